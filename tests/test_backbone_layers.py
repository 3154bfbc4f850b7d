"""models/nets/ knows only torch, timm and torchvision; weights from disk, the hub and earlier runs
are resolved above it (models/backbones.py; the hub's offline switch is compat.hf_hub_offline,
tested in test_compat_libraries.py).

    PYTHONPATH=src python -m pytest tests/test_backbone_layers.py -q
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
import torch

from dlrecipe.errors import ConfigError

SRC = Path(__file__).resolve().parents[1] / "src" / "dlrecipe"
# What a net may import: the libraries that define networks, its siblings, and the leaf
# modules that describe the data, report a user's mistake, and hold other libraries' private
# details (compat.py, which imports nothing of dlrecipe: checked below).
LIBRARIES = {"torch", "timm", "torchvision"}
OWN = ("dlrecipe.models.nets.", "dlrecipe.data.info", "dlrecipe.errors", "dlrecipe.compat")


def imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def test_nets_import_nothing_above_them() -> None:
    files = sorted((SRC / "models" / "nets").glob("*.py"))
    assert len(files) >= 6  # the package is where the test looks
    for path in files:
        for module in imports(path):
            top = module.partition(".")[0]
            if top in sys.stdlib_module_names or top == "__future__":
                continue
            assert top in LIBRARIES or module.startswith(OWN), f"{path.name} imports {module}"
    assert not (SRC / "models" / "nets" / "earlier_run.py").exists()  # moved up: no circle
    assert not any(m.startswith("dlrecipe") for m in imports(SRC / "compat.py"))  # a leaf


def test_backbone_modules_do_not_import_each_other_in_a_circle() -> None:
    backbones = imports(SRC / "models" / "backbones.py")
    earlier = imports(SRC / "models" / "earlier_run.py")
    assert "dlrecipe.models.earlier_run" in backbones  # resolves source=dlrecipe ...
    assert not any(m.startswith("dlrecipe.models.backbones") for m in earlier)  # ... one way


def test_a_net_given_a_weight_file_it_cannot_read_says_where_it_is_read(tmp_path: Path) -> None:
    from dlrecipe.models.nets.pretrained import PretrainedNet

    path = tmp_path / "w.pth"
    torch.save({}, path)
    backbone = {"source": "timm", "name": "test_resnet", "weights": str(path)}
    with pytest.raises(ConfigError, match=r"resolve_backbone.*build_model"):
        PretrainedNet((1, 8, 8), 3, backbone, input_size=32)


def test_a_resolved_file_backbone_reaches_the_net_with_its_weights(tmp_path: Path) -> None:
    import timm

    from dlrecipe.models.backbones import resolve_backbone
    from dlrecipe.models.nets.pretrained import PretrainedNet

    torch.manual_seed(4)
    path = tmp_path / "w.pth"
    torch.save(timm.create_model("test_resnet").state_dict(), path)
    parts = resolve_backbone("test_resnet", "timm", str(path))
    net = PretrainedNet((1, 8, 8), 3, parts, input_size=32)
    assert net.pretrained and net.name == "test_resnet"
    saved = torch.load(path, weights_only=True)
    for key, value in net.backbone.state_dict().items():
        assert torch.equal(value, saved[key]), key
