"""Category fidelity: does the object drawn in each box look like the category it was asked for?

A small convolutional classifier is trained on the crops of a real dataset's boxes (for the
synthetic world: its train split), then applied to the crop under every conditioning box of the
clips to score. The share of crops classified as their conditioning category is the category
accuracy; the same figure on real clips is the reference (occlusion and truncation keep it
below 1 there too). A clip whose objects have the right places but the wrong shapes scores
well on alignment and badly here.
"""
import pickle
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmtrackgen.structures import TrackletLayout

CROP_SIZE = 20  # pixels per side of a resized crop: the world's objects are 6-40 px wide
MIN_VISIBILITY = 0.5  # crops of mostly hidden objects are not scored (nor learned from)


def layout_crops(layout: TrackletLayout,
                 frames: np.ndarray,
                 size: int = CROP_SIZE,
                 context: float = 0.1,
                 min_visibility: float = MIN_VISIBILITY) -> Tuple[np.ndarray, List[str]]:
    """The crop under each visible box of a clip: ((M, size, size, 3) uint8, M category names).

    A box is grown by ``context`` of its size on each side (edges replicated outside the
    frame) so the object's outline is inside the crop, then resized to ``size`` x ``size``.
    Entries whose visibility is below ``min_visibility`` are left out.
    """
    height, width = frames.shape[1:3]
    padded = [
        cv2.copyMakeBorder(f, height, height, width, width, cv2.BORDER_REPLICATE) for f in frames
    ]
    crops, names = [], []
    for t, n in zip(*np.nonzero(layout.visible)):
        if layout.visibility[t, n] < min_visibility:
            continue
        x1, y1, x2, y2 = layout.boxes[t, n]
        gx, gy = context * (x2 - x1), context * (y2 - y1)
        # integer pixel edges in the padded frame, at least one pixel wide
        px1, py1 = int(np.floor(x1 - gx)) + width, int(np.floor(y1 - gy)) + height
        px2 = max(int(np.ceil(x2 + gx)) + width, px1 + 1)
        py2 = max(int(np.ceil(y2 + gy)) + height, py1 + 1)
        crop = padded[t][py1:py2, px1:px2]
        crops.append(cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA))
        names.append(layout.categories[n])
    if not crops:
        return np.zeros((0, size, size, 3), np.uint8), []
    return np.stack(crops), names


def _conv_bn_relu(in_channels: int, out_channels: int) -> Tuple[nn.Module, ...]:
    return (nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU())


class CategoryClassifier(nn.Module):
    """A four-layer CNN over ``crop_size`` crops; ``classes`` are kept with its weights."""

    def __init__(self, classes: Sequence[str], crop_size: int = CROP_SIZE, width: int = 32):
        super().__init__()
        if len(classes) < 2:
            raise ValueError(f'a classifier needs at least 2 classes, got {list(classes)}')
        self.classes = tuple(classes)
        self.crop_size = crop_size
        self.width = width
        self.features = nn.Sequential(
            *_conv_bn_relu(3, width), *_conv_bn_relu(width, width), nn.MaxPool2d(2),
            *_conv_bn_relu(width, 2 * width), nn.MaxPool2d(2),
            *_conv_bn_relu(2 * width, 2 * width),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(2 * width, len(classes))

    @staticmethod
    def to_input(crops: np.ndarray) -> torch.Tensor:
        """(M, S, S, 3) uint8 -> (M, 3, S, S) float in [-1, 1]."""
        return torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 127.5 - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (M, num_classes)

    @torch.no_grad()
    def predict(self, crops: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """(M, S, S, 3) uint8 crops -> (M,) predicted class indices."""
        self.eval()
        if not len(crops):
            return np.zeros(0, np.int64)
        logits = [self(self.to_input(c)) for c in np.array_split(crops, -(-len(crops) //
                                                                         batch_size))]
        return torch.cat(logits).argmax(1).numpy()

    def instance_accuracy(self, layout: TrackletLayout, frames: np.ndarray) -> np.ndarray:
        """(N,) share of each instance's scored crops classified as its category (NaN where
        none is visible enough to score): the per-instance scorer of
        :func:`mmtrackgen.generation.filtering.filter_generated`."""
        keep = layout.visible & (layout.visibility >= MIN_VISIBILITY)  # (F, N)
        crops, names = layout_crops(layout, frames)  # in np.nonzero(keep) order
        unknown = sorted(set(names) - set(self.classes))
        if unknown:
            raise ValueError(f"video '{layout.name}': categories {unknown} are not among the "
                             f'classifier\'s classes {list(self.classes)}')
        correct = self.predict(crops) == np.asarray([self.classes.index(n) for n in names],
                                                    np.int64)
        hits = np.zeros(layout.num_instances)
        np.add.at(hits, np.nonzero(keep)[1], correct)
        counts = keep.sum(axis=0)
        with np.errstate(invalid='ignore', divide='ignore'):
            return np.where(counts > 0, hits / counts, np.nan)

    def save(self, path: str) -> None:
        torch.save(
            dict(
                state_dict=self.state_dict(),
                classes=list(self.classes),
                crop_size=self.crop_size,
                width=self.width), path)

    @classmethod
    def load(cls, path: str) -> 'CategoryClassifier':
        """A classifier saved by :meth:`save`; only tensors and plain values are unpickled."""
        try:
            saved = torch.load(path, map_location='cpu', weights_only=True)
            model = cls(saved['classes'], saved['crop_size'], saved['width'])
            model.load_state_dict(saved['state_dict'])
        except FileNotFoundError:
            raise FileNotFoundError(f"category classifier '{path}' does not exist (train one "
                                    'with tools/train_category_classifier.py)') from None
        except (KeyError, RuntimeError, TypeError, ValueError, EOFError,
                pickle.UnpicklingError) as e:
            raise ValueError(f"'{path}' is not a category classifier saved by "
                             f'tools/train_category_classifier.py: {e}') from e
        return model.eval()


def collect_crops(videos, classes: Sequence[str]) -> Tuple[np.ndarray, np.ndarray]:
    """Crops and class indices of every visible entry of ``[(layout, frames), ...]``."""
    crops, labels = [], []
    for layout, frames in videos:
        clip_crops, names = layout_crops(layout, frames)
        unknown = sorted(set(names) - set(classes))
        if unknown:
            raise ValueError(f"video '{layout.name}': categories {unknown} are not among the "
                             f'classifier\'s classes {list(classes)}')
        crops.append(clip_crops)
        labels.extend(classes.index(n) for n in names)
    size = crops[0].shape[1] if crops else CROP_SIZE
    return (np.concatenate(crops) if crops else np.zeros(
        (0, size, size, 3), np.uint8)), np.asarray(labels, np.int64)


def train_category_classifier(videos,
                              classes: Sequence[str],
                              iterations: int = 600,
                              batch_size: int = 128,
                              lr: float = 3e-3,
                              seed: int = 0,
                              log=print) -> CategoryClassifier:
    """Train a :class:`CategoryClassifier` on the box crops of real ``[(layout, frames)]``.

    Crops are flipped horizontally at random (every category of the world is symmetric about
    its vertical axis) and their colours permuted, so the classifier judges shape, not colour.
    """
    classes = list(classes)
    crops, labels = collect_crops(videos, classes)
    if len(crops) < len(classes):
        raise ValueError(f'{len(crops)} crops are too few to train a {len(classes)}-class '
                         'classifier')
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = CategoryClassifier(classes)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=iterations)
    x_all, y_all = model.to_input(crops), torch.from_numpy(labels)
    model.train()
    log_every = max(1, iterations // 10)
    total, correct, seen = 0.0, 0, 0
    for step in range(1, iterations + 1):
        # sampled with replacement: the schedule is counted in steps, whatever the set's size
        idx = torch.randint(len(crops), (batch_size, ), generator=generator)
        x, y = x_all[idx], y_all[idx]
        flip = torch.rand(len(idx), generator=generator) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        x = x[:, torch.randperm(3, generator=generator)]  # colour channels permuted
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        total += loss.item() * len(idx)
        correct += (logits.argmax(1) == y).sum().item()
        seen += len(idx)
        if log is not None and (step % log_every == 0 or step == iterations):
            log(f'category classifier step {step}/{iterations}: loss {total / seen:.4f}, '
                f'train accuracy {correct / seen:.3f}')
            total, correct, seen = 0.0, 0, 0
    return model.eval()


def category_accuracy(videos, classifier: CategoryClassifier) -> Dict[str, object]:
    """Share of the visible boxes of ``[(layout, frames)]`` whose crop the classifier assigns to
    the box's own category, overall and per class."""
    crops, labels = collect_crops(videos, classifier.classes)
    if not len(crops):
        return dict(accuracy=float('nan'), entries=0, per_class={})
    predicted = classifier.predict(crops)
    per_class = {
        name: float((predicted[labels == k] == k).mean())
        for k, name in enumerate(classifier.classes) if (labels == k).any()
    }
    return dict(
        accuracy=float((predicted == labels).mean()), entries=int(len(labels)),
        per_class=per_class)


def load_category_classifier(path: Optional[str]) -> Optional[CategoryClassifier]:
    return CategoryClassifier.load(path) if path else None
