"""What travels between the window and the engine process: jobs, their results and events.

Every job is answered by a stream of :class:`Event` ending with exactly one terminal event
(DONE, CANCELLED or FAILED); big arrays travel as :class:`~xraystudio.engine.shared.SharedArray`
handles (the sender of a job unlinks its blocks when the job is over, the receiver of a result
unlinks the result's).
"""

from __future__ import annotations

import dataclasses
import enum
import os
from multiprocessing.shared_memory import SharedMemory

import numpy as np

from xraystudio.engine.shared import SharedArray
from xraystudio.image import XRayImage
from xraystudio.masks import MaskStack


class EventKind(str, enum.Enum):
    """What an event says; its ``args`` follow the comment of each kind."""

    STAGE = "stage"  # (text,) what is happening, for a status line
    PROGRESS = "progress"  # (Progress or SweepProgress, preview as uint8 or None)
    ITEM = "item"  # a sweep cell: (CellRecord dict, GeneratedImage or None, CellMasks or None)
    DONE = "done"  # (answer,): list[GeneratedImage], Segmented, or the sweep record dict
    CANCELLED = "cancelled"  # ()
    FAILED = "failed"  # (message,) readable, for the user


TERMINAL = frozenset({EventKind.DONE, EventKind.CANCELLED, EventKind.FAILED})


@dataclasses.dataclass(frozen=True)
class Event:
    kind: EventKind
    args: tuple = ()

    @property
    def terminal(self) -> bool:
        return self.kind in TERMINAL


def unexpected(what: str, exc: BaseException) -> str:
    """The message for an error nobody foresaw (its traceback goes to the log, not the user)."""
    return f"{what} failed unexpectedly: {exc}"


@dataclasses.dataclass
class Job:
    """One generation request, as sent to the engine process (big arrays in shared memory)."""

    model_ref: str | None
    params: dict  # GenerationRequest keywords besides masks and image
    image: XRayImage | None  # with a 1 x 1 stand-in for its values
    values: SharedArray | None
    masks: SharedArray  # (layers, H, W) bool
    layers: list[str]
    spacing_mm: tuple[float, float]
    nodules: list
    device: str = "auto"
    source_nodules: list = dataclasses.field(default_factory=list)
    # synthesis.acceleration: the window's engine never compiles (a first Generate would wait
    # 30-60 s on CUDA), but keeps half precision and channels-last.
    optimize: str = "eager"

    @classmethod
    def pack(cls, model_ref: str | None, masks: MaskStack, image: XRayImage | None,
             params: dict) -> tuple[Job, list[SharedMemory]]:
        """The job and the shared blocks its sender must unlink once the job is over."""
        blocks = []
        values = None
        if image is not None:
            values, block = SharedArray.put(image.values)
            blocks.append(block)
            image = dataclasses.replace(image, values=np.zeros((1, 1), np.float32))
        layers, block = SharedArray.put(masks.to_array())
        blocks.append(block)
        return cls(model_ref, params, image, values, layers, masks.names, masks.spacing_mm,
                   list(masks.nodules), source_nodules=list(masks.source_nodules)), blocks

    def unpack(self) -> tuple[MaskStack, XRayImage | None]:
        arrays = self.masks.take(unlink=False)
        masks = MaskStack.from_arrays(arrays.shape[1:], dict(zip(self.layers, arrays, strict=True)),
                                      self.spacing_mm, self.nodules, layers=self.layers,
                                      source_nodules=self.source_nodules)
        image = self.image
        if image is not None and self.values is not None:
            image = dataclasses.replace(image, values=self.values.take(unlink=False))
        return masks, image


@dataclasses.dataclass
class GeneratedImage:
    """One result, ready to show: the image, its metrics and where it came from."""

    image: np.ndarray  # float32 [0, 1] at the source size (a SharedArray in transit)
    condition: np.ndarray  # (C, S, S) model input
    layers: list[str]  # which mask layer each leading condition channel holds
    seed: int
    metrics: dict[str, float]
    provenance: dict
    pixels: np.ndarray | None = None  # grey RGB32 words of ``image``, made by the receiver
    # Edit mode: the edited radiograph's modality values at the source size, as its format
    # stores them (for saving it exactly), and where they differ from the source (bool).
    values: np.ndarray | None = None  # a SharedArray in transit
    changed: np.ndarray | None = None  # a SharedArray in transit

    @property
    def is_edit(self) -> bool:
        return self.values is not None

    def take(self) -> None:
        """Replace the shared arrays of a result that arrived with private copies (receiver)."""
        self.image = self.image.take(unlink=True)
        if isinstance(self.values, SharedArray):
            self.values = self.values.take(unlink=True)
        if isinstance(self.changed, SharedArray):
            self.changed = self.changed.take(unlink=True)


@dataclasses.dataclass
class SegmentJob:
    """One anatomy segmentation request: the display image goes in through shared memory."""

    display: SharedArray  # (H, W) float32 display values in [0, 1]
    resources: str | None  # the sender's XRAYSTUDIO_RESOURCES, which locates the model

    @classmethod
    def pack(cls, display: np.ndarray) -> tuple[SegmentJob, list[SharedMemory]]:
        """The job and the shared block its sender must unlink once the job is over."""
        shared, block = SharedArray.put(np.ascontiguousarray(display, dtype=np.float32))
        return cls(shared, os.environ.get("XRAYSTUDIO_RESOURCES")), [block]


@dataclasses.dataclass
class Segmented:
    """The answer to a SegmentJob: one boolean mask per structure at the display's size."""

    names: list[str]
    masks: SharedArray  # (structures, H, W) bool; the receiver unlinks it

    def take(self) -> dict[str, np.ndarray]:
        arrays = self.masks.take(unlink=True)
        return dict(zip(self.names, arrays, strict=True))


@dataclasses.dataclass
class SweepJob:
    """A conditioning sweep: the study once (as a generation Job) and the sweep record."""

    job: Job  # the study (masks and image in shared memory); its params are unused
    record: dict  # explore.sweep.SweepRecord.to_dict()
    faithfulness: bool = True

    @classmethod
    def pack(cls, record, masks: MaskStack, image: XRayImage | None,
             faithfulness: bool = True) -> tuple[SweepJob, list[SharedMemory]]:
        job, blocks = Job.pack(record.sweep.model, masks, image, {})
        return cls(job, record.to_dict(), faithfulness), blocks


@dataclasses.dataclass
class CellMasks:
    """The masks a sweep cell gave the model, when a layer or nodule axis changed them."""

    names: list[str]
    layers: SharedArray  # (layers, H, W) bool; the receiver unlinks it
    nodules: list

    def take(self, spacing_mm, source_nodules) -> MaskStack:
        arrays = self.layers.take(unlink=True)
        return MaskStack.from_arrays(arrays.shape[1:], dict(zip(self.names, arrays, strict=True)),
                                     spacing_mm, self.nodules, layers=self.names,
                                     source_nodules=source_nodules)
