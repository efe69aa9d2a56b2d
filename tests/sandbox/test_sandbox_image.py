"""Image tags follow content; a missing or stale image is a clear error naming the command."""

from __future__ import annotations

import pytest

from sandbox import image
from sandbox.container import resolve_image
from sandbox.spec import SandboxError


def test_tag_is_a_content_hash(tmp_path):
    (tmp_path / "mechanistic").mkdir()
    (tmp_path / "mechanistic" / "__init__.py").write_text("A = 1\n")
    t1 = image.image_tag(tmp_path)
    assert t1 == image.image_tag(tmp_path) and t1.startswith("mmw-sandbox:")
    (tmp_path / "mechanistic" / "__init__.py").write_text("A = 2\n")
    assert image.image_tag(tmp_path) != t1
    files = image.top_files(tmp_path)
    assert "opt/mmw/sandbox/guest.py" in files and "opt/mmw/mechanistic/__init__.py" in files


class _Images:
    def __init__(self, tags):
        self.tags = tags

    def get(self, tag):
        import docker.errors

        if tag not in self.tags:
            raise docker.errors.ImageNotFound(tag)
        return object()

    def list(self):
        img = type("Img", (), {})()
        img.tags = [f"localhost/{t}" for t in self.tags]
        return [img]


class _Client:
    def __init__(self, tags):
        self.images = _Images(tags)


def test_missing_and_stale_image_name_the_build_command():
    pytest.importorskip("docker")
    with pytest.raises(SandboxError, match=r"not built; run `mmw sandbox build-image`"):
        resolve_image(_Client([]))
    with pytest.raises(SandboxError, match=r"stale .*mmw-sandbox:0000.*mmw sandbox build-image"):
        resolve_image(_Client(["mmw-sandbox:0000"]))
    current = image.image_tag()
    assert resolve_image(_Client([current])) == current
