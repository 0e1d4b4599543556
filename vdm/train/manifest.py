"""Checksums of a committed checkpoint's files, written next to them and checked before a restore.

orbax keeps no checksums: a flipped byte in array data restores silently with a
wrong value. The manifest lists the sha256 of every file of a step directory
(array data, metadata, data-iterator state, config) as it was when the save
committed; ``verify`` recomputes them and names any file that changed.
"""
from __future__ import annotations

import hashlib
import json
import os

NAME = "vdm_manifest.json"


class ChecksumMismatch(RuntimeError):
    """A checkpoint's files differ from the checksums written when it was saved."""


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def checksums(step_dir: str) -> dict[str, str]:
    """{path relative to step_dir: sha256} of every file but the manifest itself."""
    out = {}
    for root, _, files in os.walk(step_dir):
        for name in files:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, step_dir)
            if not rel.startswith(NAME):  # the manifest and its temporary file
                out[rel] = _sha256(path)
    return dict(sorted(out.items()))


def exists(step_dir: str) -> bool:
    return os.path.exists(os.path.join(step_dir, NAME))


def write(step_dir: str) -> None:
    path = os.path.join(step_dir, NAME)
    tmp = path + ".tmp"
    sums = checksums(step_dir)
    with open(tmp, "w") as f:
        json.dump({"sha256": sums}, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)  # atomic: a manifest is whole or absent


def verify(step_dir: str) -> bool:
    """Raise ChecksumMismatch naming the first files that changed or vanished. False (and a
    warning) when the step has no manifest: its run stopped between commit and manifest."""
    path = os.path.join(step_dir, NAME)
    if not os.path.exists(path):
        print(f"warning: {step_dir} has no checksum manifest; restoring it unverified", flush=True)
        return False
    with open(path) as f:
        expected = json.load(f)["sha256"]
    bad = []
    for rel, digest in expected.items():
        full = os.path.join(step_dir, rel)
        if not os.path.exists(full):
            bad.append(f"{rel} is missing")
        elif _sha256(full) != digest:
            bad.append(f"{rel} changed")
    if bad:
        raise ChecksumMismatch(f"checkpoint {step_dir} is corrupt ({len(bad)} of {len(expected)} files): "
                               + "; ".join(bad[:5]) + (" ..." if len(bad) > 5 else ""))
    return True
