"""A scan for plaintext secrets in the files git tracks (used by test_secrets.py)."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.conftest import REPO

# The one committed private key: public on purpose, for VM tests only.
ALLOWED = {"secrets/test-only-age-key.txt"}

PATTERNS = {
    "age private key": re.compile(r"AGE-SECRET-KEY-1[0-9A-Z]{58}"),
    "PEM/OpenSSH private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "WireGuard private key in config": re.compile(
        r"(?i)private[_-]?key\s*[=:]\s*[\"']?[A-Za-z0-9+/]{43}=", re.MULTILINE
    ),
    "inline password": re.compile(
        r"(?i)\b(password|passwd|secret_key|smtp_auth_password)\s*[=:]\s*[\"']?"
        r"(?![\"']?\$|[\"']?ENC\[|[\"']?<|[\"']?\{|[\"']?\(|[\"']?null|[\"']?none\b)"
        r"[A-Za-z0-9_\-+/=!@#%^&*.]{12,}"
    ),
}


@dataclass(frozen=True)
class Finding:
    """One suspected plaintext secret: file (repo-relative), 1-based line, kind."""

    path: str
    line: int
    kind: str


SKIP_DIRS = {".git", ".venv", "result", ".direnv", "__pycache__", ".pytest_cache", ".mypy_cache"}


def tracked_files(repo: Path = REPO) -> list[str]:
    """Files git tracks, plus files not ignored and not yet added (about to be committed).

    Outside a git checkout (the Nix build sandbox copies the source without .git), every
    file under ``repo`` except build and cache directories and ``bench/out``.
    """
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
            capture_output=True,
            text=True,
            cwd=repo,
            check=True,
        )
        return sorted(set(out.stdout.splitlines()))
    except (FileNotFoundError, subprocess.CalledProcessError):
        found = []
        for path in repo.rglob("*"):
            rel = path.relative_to(repo)
            if SKIP_DIRS.intersection(rel.parts) or rel.parts[:2] == ("bench", "out"):
                continue
            if path.is_file():
                found.append(rel.as_posix())
        return sorted(found)


def scan_text(path: str, text: str) -> list[Finding]:
    """Findings of every pattern in one file's text."""
    found = []
    for kind, pattern in PATTERNS.items():
        for m in pattern.finditer(text):
            found.append(Finding(path, text.count("\n", 0, m.start()) + 1, kind))
    return found


def unencrypted_sops_values(path: Path) -> list[str]:
    """Leaf keys of a sops YAML file whose values are not ``ENC[...]`` (the sops block aside)."""
    doc = yaml.safe_load(path.read_text())
    bad: list[str] = []

    def walk(node: object, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if prefix == "" and k == "sops":
                    continue
                walk(v, f"{prefix}/{k}" if prefix else str(k))
        elif not (isinstance(node, str) and node.startswith("ENC[AES256_GCM,")):
            bad.append(prefix)

    walk(doc, "")
    return bad


def scan_repo(repo: Path = REPO) -> list[Finding]:
    """Every finding in the repository's files, except the allowed test key."""
    found: list[Finding] = []
    for rel in tracked_files(repo):
        if rel in ALLOWED:
            continue
        path = repo / rel
        if not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        found += scan_text(rel, text)
        if rel.startswith("secrets/") and rel.endswith((".yaml", ".yml")):
            found += [
                Finding(rel, 0, f"unencrypted sops value {k}")
                for k in unencrypted_sops_values(path)
            ]
    return found
