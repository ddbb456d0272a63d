"""The pixels of the slice a screen wants now: at once when cached, else decoded on a worker thread.

Shared by the workstation's :class:`~annotator.gui.session.AnnotationSession` and the review screen's
:class:`~annotator.gui.review_presenter.ReviewPresenter`: both ask for one slice at a time, and an
answer for a slice the user has already left is dropped (it stays in the loader's cache).
"""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtCore import QObject, Signal

from annotator.domain.entities import ImageRef
from annotator.gui.pixel_loader import PixelLoader
from annotator.services.viewing import DecodedSlice


class SliceFeed(QObject):
    shown = Signal(object)  # DecodedSlice of the wanted slice, decoded on a worker
    failed = Signal(object, object)  # ImageRef, exception: the wanted slice cannot be decoded

    def __init__(self, loader: PixelLoader | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.loader = loader or PixelLoader(parent=self)
        self.loader.ready.connect(self._on_ready)
        self.loader.failed.connect(self._on_failed)
        self.wanted: ImageRef | None = None
        self.decoded: DecodedSlice | None = None  # pixels of the wanted slice, once they are known
        self._request_id = 0

    def want(self, image: ImageRef) -> DecodedSlice | None:
        """Make ``image`` the slice to show. Cached pixels are returned (not emitted); otherwise they
        come by ``shown`` (or ``failed``) unless another slice is wanted first."""
        self.wanted = image
        hit = self.loader.cached(image.id)
        self.decoded = hit
        self._request_id = 0 if hit is not None else self.loader.request(image)
        return hit

    def clear(self) -> None:
        """Want nothing: a pending answer is dropped."""
        self.wanted, self.decoded, self._request_id = None, None, 0

    def showing(self, image_id: int | None) -> bool:
        """True when the pixels of this slice, the wanted one, are known."""
        return image_id is not None and self.decoded is not None and self.decoded.image.id == image_id

    def prefetch(self, images: Iterable[ImageRef]) -> None:
        self.loader.prefetch(images)

    def _on_ready(self, request_id: int, decoded: DecodedSlice) -> None:
        if request_id != self._request_id or self.wanted is None or decoded.image.id != self.wanted.id:
            return  # stale: the user has moved on
        self.decoded = decoded
        self.shown.emit(decoded)

    def _on_failed(self, request_id: int, image: ImageRef, exc: Exception) -> None:
        if request_id == self._request_id:
            self.failed.emit(image, exc)

    def shutdown(self) -> None:
        """Stop decoding, for good."""
        self.clear()
        self.loader.shutdown()
