"""Choose one series when a folder holds several: patient, date, modality, description, images,
spacing and a thumbnail of the middle slice."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QDialog, QDialogButtonBox, QLabel,
                               QTableWidget, QTableWidgetItem, QVBoxLayout)

from liverplan.viewers.panels.load_panel import dicom_date

THUMBNAIL_PX = 96
COLUMNS = ("", "Patient", "Date", "Modality", "Description", "Images", "Spacing (mm)")


def thumbnail(info, size: int = THUMBNAIL_PX) -> QPixmap | None:
    """The middle slice of a series, contrast-stretched (1st-99th percentile), or None."""
    if not info.files:
        return None
    try:
        pixels = sitk.GetArrayFromImage(sitk.ReadImage(info.files[len(info.files) // 2]))
    except RuntimeError:
        return None
    pixels = pixels.reshape(pixels.shape[-2:]).astype(np.float32)
    lo, hi = np.percentile(pixels, (1, 99))
    grey = np.ascontiguousarray(np.clip((pixels - lo) / max(hi - lo, 1.0) * 255, 0, 255)
                                .astype(np.uint8))
    image = QImage(grey.data, grey.shape[1], grey.shape[0], grey.strides[0],
                   QImage.Format_Grayscale8).copy()
    return QPixmap.fromImage(image).scaled(size, size, Qt.KeepAspectRatio, Qt.SmoothTransformation)


def spacing_text(info) -> str:
    row, col = info.pixel_spacing_mm
    z = f" × {info.slice_spacing_mm:.2f}" if info.slice_spacing_mm else ""
    return f"{row:.2f} × {col:.2f}{z}"


class SeriesBrowser(QDialog):
    def __init__(self, series: list, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Choose a series")
        self.series = list(series)
        self.table = QTableWidget(len(self.series), len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setIconSize(QSize(THUMBNAIL_PX, THUMBNAIL_PX))
        self.table.verticalHeader().setDefaultSectionSize(THUMBNAIL_PX + 4)
        for row, info in enumerate(self.series):
            values = ("", info.patient_name or info.patient_id, dicom_date(info.study_date),
                      info.modality,
                      info.description, str(info.n_images), spacing_text(info))
            for col, text in enumerate(values):
                self.table.setItem(row, col, QTableWidgetItem(text))
            pixmap = thumbnail(info)
            if pixmap is not None:
                self.table.item(row, 0).setIcon(QIcon(pixmap))
        self.table.resizeColumnsToContents()
        self.table.setColumnWidth(0, THUMBNAIL_PX + 8)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.selectRow(max(range(len(self.series)), key=lambda r: self.series[r].n_images))
        self.table.doubleClicked.connect(self.accept)
        buttons = QDialogButtonBox(QDialogButtonBox.Open | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"This folder holds {len(self.series)} image series."))
        layout.addWidget(self.table)
        layout.addWidget(buttons)
        self.resize(860, 420)

    def selected(self):
        rows = self.table.selectionModel().selectedRows()
        return self.series[rows[0].row()] if rows else None
