"""The distribution is agentbill-sdk; the import name is agentbill.

Offline and standard library only: the wheel and sdist are built with the
in-tree backend (_build/agentbill_build.py), as pip would, and their
metadata read back. No server and no package index are needed.
"""

import email.parser
import os
import sys
import tarfile
import tempfile
import unittest
import zipfile

SDK_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD_DIR = os.path.join(SDK_DIR, "_build")
for path in (SDK_DIR, BUILD_DIR):
    if path not in sys.path:
        sys.path.insert(0, path)

import agentbill  # noqa: E402
import agentbill_build  # noqa: E402

DIST_NAME = "agentbill-sdk"
IMPORT_NAME = "agentbill"


def _metadata(text):
    return email.parser.Parser().parsestr(text)


class DistributionTest(unittest.TestCase):
    def test_pyproject_names_the_distribution(self):
        try:
            import tomllib  # Python 3.11+
        except ImportError:
            self.skipTest("tomllib needs Python 3.11; the wheel test below covers the name")
        with open(os.path.join(SDK_DIR, "pyproject.toml"), "rb") as f:
            project = tomllib.load(f)["project"]
        self.assertEqual(project["name"], DIST_NAME)
        self.assertEqual(project["version"], agentbill.__version__)

    def test_wheel_metadata(self):
        with tempfile.TemporaryDirectory() as tmp:
            filename = agentbill_build.build_wheel(tmp)
            self.assertTrue(filename.startswith("agentbill_sdk-%s-" % agentbill.__version__), filename)
            with zipfile.ZipFile(os.path.join(tmp, filename)) as z:
                names = z.namelist()
                info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
                meta = _metadata(z.read(info + "/METADATA").decode("utf-8"))
                top_level = z.read(info + "/top_level.txt").decode().split()
        self.assertEqual(meta["Name"], DIST_NAME)
        self.assertEqual(meta["Version"], agentbill.__version__)
        self.assertEqual(top_level, [IMPORT_NAME])
        self.assertIn(IMPORT_NAME + "/__init__.py", names)

    def test_sdist_metadata(self):
        with tempfile.TemporaryDirectory() as tmp:
            filename = agentbill_build.build_sdist(tmp)
            self.assertEqual(filename, "agentbill_sdk-%s.tar.gz" % agentbill.__version__)
            with tarfile.open(os.path.join(tmp, filename)) as tar:
                root = filename[: -len(".tar.gz")]
                pkg_info = tar.extractfile(root + "/PKG-INFO").read().decode("utf-8")
        self.assertEqual(_metadata(pkg_info)["Name"], DIST_NAME)

    def test_import_name(self):
        from agentbill import AgentBillClient

        self.assertIs(AgentBillClient, agentbill.AgentBillClient)
        self.assertIn("AgentBillClient", agentbill.__all__)
        self.assertEqual(agentbill.__name__, IMPORT_NAME)


if __name__ == "__main__":
    unittest.main()
