"""An image's acceptance tests: the files under its ``tests:`` paths. They
are not inputs of the AMI (their digest is kept apart: ``core/acceptance``),
but they are read the same way: inside the repository, regular files,
links inside it followed; Python's caches and tools' leftovers skipped."""

from __future__ import annotations

from ..core.errors import AmiError
from ..core.graph import Graph, Image
from .repo import Found, Repo


def test_files(graph: Graph, image: Image) -> list[str]:
    """Every test file of ``image``, sorted; [] when it has no tests."""
    repo = Repo(graph.root)
    found = Found()
    for path in image.tests:
        if repo.is_dir(path):
            files = repo.files_under(path, strict=False)
            if not any(f.rsplit("/", 1)[-1].startswith("test") and f.endswith(".py")
                       for f in files):
                raise AmiError(f"{graph.file.name}: image {image.name}: tests {path} holds no "
                               "test_*.py file: add the image's testinfra tests there, or fix "
                               "the path")
            for f in files:
                found.add(f, "tests")
        else:
            repo.add_file(found, path, "tests", f"{graph.file.name}: image {image.name}: tests",
                          path)
    return sorted(found.files)
