"""Classifier two-sample test: can a small CNN trained from scratch tell generated from real?

The test every realism claim here rests on (edit mode's nodule windows, layout and guided modes'
whole films): a CNN with no pretraining is trained to tell the two sets apart and scored on
items it never saw, folds split by case. Its cross-validated AUC is 0.5 when it cannot tell them
apart and 1.0 when it always can. An item is one picture or a stack of patches of one film: the
classifier trains on the patches and scores the item by the mean of its patches' logits, which
lets full-resolution texture be tested without a network that takes a 1024 px film.
"""

from __future__ import annotations

import numpy as np


def auc(negative: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U over all pairs, ties counting one half)."""
    neg, pos = np.asarray(negative)[:, None], np.asarray(positive)[None, :]
    return float(((pos > neg).sum() + 0.5 * (pos == neg).sum()) / (neg.size * pos.size))


def zscore(img: np.ndarray) -> np.ndarray:
    """The picture less its mean over its standard deviation: the test asks about structure and
    texture, not about exposure (which PSNR already measures)."""
    arr = np.asarray(img, np.float32)
    return ((arr - arr.mean()) / (arr.std() + 1e-6)).astype(np.float32)


def _network(side: int):
    """Three 3x3 conv layers with pooling, global average, one logit; pictures above 64 px
    first pass stride-2 convolutions down to 64 px or less, which keeps a film's finest detail
    visible to the network (the strided filters are learnt) at a fraction of the cost: a few
    minutes on one CPU thread for 40 + 40 films of 256 px or of eight 128 px patches."""
    import torch

    stem: list = []
    channels = 1
    while side > 64:
        stem += [torch.nn.Conv2d(channels, 8, 3, stride=2, padding=1), torch.nn.ReLU()]
        channels, side = 8, (side + 1) // 2
    return torch.nn.Sequential(
        *stem,
        torch.nn.Conv2d(channels, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(64, 1))


def two_sample_auc(real: list[np.ndarray], real_groups: list[str], fake: list[np.ndarray],
                   fake_groups: list[str], seed: int = 0, folds: int = 4, steps: int = 150,
                   batch: int = 32) -> float:
    """Cross-validated AUC of a small CNN trained from scratch to tell ``fake`` from ``real``.

    Each item is a 2-D picture or a (k, h, w) stack of patches of one film (all pictures of one
    size). Folds split by case (``*_groups``), so no radiograph is both trained on and scored;
    the classifier sees flips and 90-degree turns; an item's score is the mean logit of its
    patches. 0.5 means it cannot tell them apart.
    """
    import torch

    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    items = [np.asarray(a, np.float32) for a in real + fake]
    stacks = [a[None] if a.ndim == 2 else a for a in items]
    owner = np.concatenate([np.full(len(s), i) for i, s in enumerate(stacks)])
    x = np.concatenate(stacks)[:, None]
    y_item = np.array([0] * len(real) + [1] * len(fake), np.float32)
    y = y_item[owner]
    groups = np.array(real_groups + fake_groups)
    unique = np.array(sorted(set(groups)))
    rng.shuffle(unique)
    fold_of = {g: i % folds for i, g in enumerate(unique)}
    item_fold = np.array([fold_of[g] for g in groups])
    scores = np.zeros(len(y_item), np.float32)
    for f in range(folds):
        test = item_fold[owner] == f
        if not test.any() or len(set(y[~test])) < 2:
            continue
        net = _network(x.shape[-1])
        opt = torch.optim.Adam(net.parameters(), 1e-3, weight_decay=1e-4)
        xt, yt = torch.from_numpy(x[~test]), torch.from_numpy(y[~test])
        w_pos = float((yt == 0).sum() / max(1, (yt == 1).sum()))
        for _ in range(steps):
            idx = torch.from_numpy(rng.integers(0, len(xt), batch))
            xb = xt[idx]
            if rng.random() < 0.5:
                xb = xb.flip(-1)
            xb = torch.rot90(xb, int(rng.integers(4)), dims=(-2, -1))
            logits = net(xb)[:, 0]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                logits, yt[idx], weight=torch.where(yt[idx] == 1, w_pos, 1.0))
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            logits = torch.cat([net(torch.from_numpy(c)) for c in np.array_split(
                x[test], max(1, int(test.sum()) // 64))])[:, 0].numpy()
        for i in np.unique(owner[test]):
            scores[i] = logits[owner[test] == i].mean()
    return auc(scores[y_item == 0], scores[y_item == 1])
