"""Models: the video DiT, its building blocks and the text encoder."""
from vdm.models.dit import VideoDiT, patchify, unpatchify
from vdm.models.layers import param_count
from vdm.models.text import TextEncoder, detokenize, tokenize

__all__ = ["VideoDiT", "TextEncoder", "tokenize", "detokenize", "patchify", "unpatchify",
           "param_count"]
