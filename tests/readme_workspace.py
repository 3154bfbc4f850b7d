"""The files README.md's commands name, made small: tables, images, weights, scores.

python -c "from tests.readme_workspace import make_workspace; make_workspace(__import__('pathlib').Path('/tmp/ws'))"
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def make_workspace(root: Path) -> Path:
    rng = np.random.default_rng(0)
    n = 120
    sqft = rng.uniform(50, 250, n)
    district = rng.choice(["north", "south", "east"], n)
    pd.DataFrame({"sqft": sqft, "rooms": rng.integers(1, 6, n), "district": district,
                  "price": 1500 * sqft + rng.normal(0, 5000, n)}).to_csv(root / "houses.csv", index=False)  # fmt: skip
    age, fee = rng.integers(18, 80, n), rng.uniform(10, 90, n)
    churn = pd.DataFrame({"age": age, "plan": rng.choice(["basic", "pro"], n), "monthly_fee": fee,
                          "region": rng.choice(["a", "b"], n),
                          "churned": np.where(fee + rng.normal(0, 10, n) > 50, "yes", "no")})  # fmt: skip
    churn.to_csv(root / "churn.csv", index=False)
    (root / "moved").mkdir()
    churn.to_csv(root / "moved" / "table.csv", index=False)  # "the data moved since" (eval)
    churn.drop(columns="churned").head(10).to_csv(root / "new_rows.csv", index=False)
    from sklearn.datasets import load_wine  # new wines for the fold-ensemble prediction

    load_wine(as_frame=True).data.sample(5, random_state=0).to_csv(
        root / "new_wines.csv", index=False
    )
    a, b = rng.normal(size=n), rng.normal(size=n)
    pd.DataFrame({"f1": a, "f2": b, "patient": np.repeat(np.arange(n // 4), 4),
                  "label": np.where(a > 0, "sick", "well")}).to_csv(root / "scans.csv", index=False)  # fmt: skip
    pd.DataFrame({"a": a, "b": b, "y": np.where(a + b > 0, "p", "q"),
                  "hardness": np.abs(a + b)}).to_csv(root / "t.csv", index=False)  # fmt: skip
    np.save(root / "scores.npy", rng.uniform(size=1797))  # one per digit, in the data set's order
    _images(root / "photos" / "train", 8, rng)
    _images(root / "photos" / "test", 3, rng)
    _images(root / "folder_of_images", 2, rng, size=8)
    _weights(root)
    return root


def _images(folder: Path, per_class: int, rng: np.random.Generator, size: int = 24) -> None:
    from PIL import Image

    for c, name in enumerate(["cat", "dog"]):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = rng.integers(0, 80, size=(size, size, 3), dtype=np.uint8)
            img[c::2, :, c] = 250  # each class has its own stripes
            Image.fromarray(img, mode="RGB").save(folder / name / f"{i}.png")


def _weights(root: Path) -> None:
    """Stand-ins for resnet18 weights (random, as the README's own are): timm's and torchvision's."""
    import timm
    import torch
    import torchvision

    (root / "models").mkdir()
    state = timm.create_model("resnet18").state_dict()
    torch.save(state, root / "models" / "resnet18.pth")
    torch.save(state, root / "timm_resnet18.pth")
    torch.save(torchvision.models.resnet18().state_dict(), root / "tv_resnet18.pth")
