"""A minimal PEP 517 / PEP 660 build backend, standard library only.

The SDK has no dependencies, and neither does its build: pip runs this
module from the source tree (pyproject.toml: backend-path = ["_build"]),
so installing needs no package index. It builds a pure-Python wheel of the
``agentbill`` package, an sdist, and an editable wheel (a .pth file).
"""

import base64
import hashlib
import io
import os
import re
import tarfile
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "agentbill"
# Fixed timestamps make builds reproducible (zip cannot store before 1980).
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
SDIST_FILES = ("pyproject.toml", "README.md")
SDIST_DIRS = ("_build", PACKAGE)


def _project():
    """Reads name, version, description and requires-python from the
    [project] table of pyproject.toml (simple `key = "value"` lines; the
    file is ours, and tomllib is not in Python 3.9 or 3.10)."""
    with open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as f:
        text = f.read()
    section = re.search(r"^\[project\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
    if not section:
        raise RuntimeError("pyproject.toml has no [project] table")
    fields = dict(re.findall(r'^([A-Za-z-]+)\s*=\s*"([^"]*)"\s*$', section.group(1), re.M))
    for key in ("name", "version"):
        if key not in fields:
            raise RuntimeError("pyproject.toml [project] lacks %s" % key)
    return fields


def _dist_name(p):
    return "%s-%s" % (re.sub(r"[-_.]+", "_", p["name"]).lower(), p["version"])


def _metadata(p):
    lines = [
        "Metadata-Version: 2.1",
        "Name: %s" % p["name"],
        "Version: %s" % p["version"],
    ]
    if "description" in p:
        lines.append("Summary: %s" % p["description"])
    if "requires-python" in p:
        lines.append("Requires-Python: %s" % p["requires-python"])
    readme = os.path.join(ROOT, "README.md")
    body = ""
    if os.path.exists(readme):
        lines.append("Description-Content-Type: text/markdown")
        with open(readme, encoding="utf-8") as f:
            body = f.read()
    return "\n".join(lines) + "\n\n" + body


def _package_files():
    out = []
    base = os.path.join(ROOT, PACKAGE)
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith((".py", ".pyi")) or name == "py.typed":
                full = os.path.join(dirpath, name)
                out.append((full, os.path.relpath(full, ROOT).replace(os.sep, "/")))
    return out


def _record_line(arcname, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return "%s,sha256=%s,%d" % (arcname, digest, len(data))


def _write_wheel(directory, entries):
    """entries: (arcname, bytes) pairs; adds the dist-info and RECORD."""
    p = _project()
    dist = _dist_name(p)
    info = dist + ".dist-info"
    entries = list(entries) + [
        (info + "/METADATA", _metadata(p).encode("utf-8")),
        (info + "/WHEEL", (
            "Wheel-Version: 1.0\nGenerator: agentbill_build\n"
            "Root-Is-Purelib: true\nTag: py3-none-any\n").encode()),
        (info + "/top_level.txt", (PACKAGE + "\n").encode()),
    ]
    record = "\n".join(_record_line(a, d) for a, d in entries) + "\n%s/RECORD,,\n" % info
    entries.append((info + "/RECORD", record.encode()))
    filename = dist + "-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(directory, filename), "w", zipfile.ZIP_DEFLATED) as z:
        for arcname, data in entries:
            zi = zipfile.ZipInfo(arcname, ZIP_DATE)
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o644 << 16
            z.writestr(zi, data)
    return filename


def _read(path):
    with open(path, "rb") as f:
        return f.read()


# PEP 517 hooks.

def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _write_wheel(wheel_directory, [(arc, _read(full)) for full, arc in _package_files()])


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    """PEP 660: a wheel whose .pth file puts the source tree on sys.path."""
    pth = (ROOT + "\n").encode("utf-8")
    return _write_wheel(wheel_directory, [("_agentbill_editable.pth", pth)])


def build_sdist(sdist_directory, config_settings=None):
    p = _project()
    dist = _dist_name(p)
    filename = dist + ".tar.gz"

    def add(tar, arcname, data):
        ti = tarfile.TarInfo(dist + "/" + arcname)
        ti.size, ti.mode, ti.mtime = len(data), 0o644, 0
        tar.addfile(ti, io.BytesIO(data))

    with tarfile.open(os.path.join(sdist_directory, filename), "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for name in SDIST_FILES:
            path = os.path.join(ROOT, name)
            if os.path.exists(path):
                add(tar, name, _read(path))
        for top in SDIST_DIRS:
            for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, top)):
                dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
                for name in sorted(filenames):
                    if name.endswith(".pyc"):
                        continue
                    full = os.path.join(dirpath, name)
                    add(tar, os.path.relpath(full, ROOT).replace(os.sep, "/"), _read(full))
        add(tar, "PKG-INFO", _metadata(p).encode("utf-8"))
    return filename
