"""Send exports to a PACS: C-ECHO to test the connection, C-STORE for the SEG and the PDF.

The PACS is named as AE@HOST:PORT (called AE title, host name or address, port). Every failure
(unreachable host, refused association, an object the PACS will not take) becomes an
ExportError that says which and what to check; the files on disk are never touched.
"""

from __future__ import annotations

import re
import socket
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import pydicom
from pydicom.uid import UID
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from liverplan.errors import ExportError
from liverplan.progress import Steps

CALLING_AE = "LIVERPLAN"
TIMEOUT_S = 10.0
# C-STORE statuses 0x0000 (success) and 0xB000/0xB006/0xB007 (stored with a warning) keep the object.
_STORED = {0x0000, 0xB000, 0xB006, 0xB007}


@dataclass(frozen=True)
class PacsTarget:
    ae_title: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> "PacsTarget":
        """'AE@HOST:PORT', e.g. 'ORTHANC@pacs.hospital.org:104'."""
        m = re.fullmatch(r"([^@]{1,16})@(\[[^\]]+\]|[^:@]+):(\d{1,5})", text.strip())
        if not m or not 0 < int(m.group(3)) < 65536:
            raise ExportError(f"'{text}' is not a PACS address; write it as AE@HOST:PORT, "
                              "e.g. ORTHANC@192.168.1.20:4242")
        return cls(m.group(1).strip(), m.group(2).strip("[]"), int(m.group(3)))

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


@dataclass(frozen=True)
class StoredObject:
    path: Path
    sop_instance_uid: str
    status: int


def _reachable(target: PacsTarget, timeout_s: float) -> bool:
    """Whether anything listens at the PACS address (tells a refusal from a network problem)."""
    try:
        with socket.create_connection((target.host, target.port), timeout=timeout_s):
            return True
    except OSError:
        return False


@contextmanager
def _association(target: PacsTarget, contexts: Sequence[tuple[str, str]], *,
                 calling_ae: str, timeout_s: float) -> Iterator:
    ae = AE(ae_title=calling_ae)
    ae.connection_timeout = ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout_s
    for sop_class, syntax in contexts:
        ae.add_requested_context(sop_class, syntax)
    assoc = ae.associate(target.host, target.port, ae_title=target.ae_title)
    if assoc.is_rejected:
        raise ExportError(f"the PACS {target} refused the connection; check that it knows the "
                          f"calling AE title '{calling_ae}' and that '{target.ae_title}' is its "
                          "AE title")
    if not assoc.is_established and _reachable(target, timeout_s):
        raise ExportError(f"the PACS {target} refused the connection or did not answer in time; "
                          f"check that it knows the calling AE title '{calling_ae}', that "
                          f"'{target.ae_title}' is its AE title, and that it is not overloaded")
    if not assoc.is_established:
        raise ExportError(f"could not reach the PACS {target}; check the host name, the port, "
                          "the network and that the PACS is running")
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()


def echo(target: PacsTarget | str, *, calling_ae: str = CALLING_AE,
         timeout_s: float = TIMEOUT_S) -> None:
    """C-ECHO: return quietly if the PACS answers, else ExportError."""
    target = PacsTarget.parse(target) if isinstance(target, str) else target
    with _association(target, [(Verification, "1.2.840.10008.1.2")], calling_ae=calling_ae,
                      timeout_s=timeout_s) as assoc:
        status = assoc.send_c_echo()
        if not status or status.Status != 0x0000:
            raise ExportError(f"the PACS {target} did not answer the connection test (C-ECHO)")


def store(target: PacsTarget | str, paths: Sequence[str | Path], *, calling_ae: str = CALLING_AE,
          timeout_s: float = TIMEOUT_S, progress=None, cancel=None) -> list[StoredObject]:
    """C-STORE each DICOM file in `paths` in one association; ExportError on the first failure.

    The error names the objects that were already stored, so the user knows what the PACS has.
    """
    target = PacsTarget.parse(target) if isinstance(target, str) else target
    steps = Steps(progress, cancel)
    datasets = []
    for p in paths:
        try:
            datasets.append((Path(p), pydicom.dcmread(p)))
        except (OSError, pydicom.errors.InvalidDicomError) as exc:
            raise ExportError(f"cannot read this DICOM file to send it ({exc})", path=p) from exc
    contexts = sorted({(str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID))
                       for _, ds in datasets})
    stored: list[StoredObject] = []
    with _association(target, contexts, calling_ae=calling_ae, timeout_s=timeout_s) as assoc:
        for i, (path, ds) in enumerate(datasets):
            steps.report(i / len(datasets), f"Sending {path.name} to {target.ae_title}")
            accepted = {c.abstract_syntax for c in assoc.accepted_contexts}
            if ds.SOPClassUID not in accepted:
                raise ExportError(_partial(f"the PACS {target} does not accept "
                                           f"{UID(ds.SOPClassUID).name} objects", stored), path=path)
            status = assoc.send_c_store(ds)
            if not status:
                raise ExportError(_partial(f"the PACS {target} stopped answering while "
                                           "receiving this file", stored), path=path)
            if status.Status not in _STORED:
                comment = f" ({status.ErrorComment})" if "ErrorComment" in status else ""
                raise ExportError(_partial(f"the PACS {target} rejected this object with status "
                                           f"0x{status.Status:04X}{comment}; ask the PACS "
                                           "administrator", stored), path=path)
            stored.append(StoredObject(path, str(ds.SOPInstanceUID), int(status.Status)))
    steps.report(1.0, f"Sent {len(stored)} object(s) to {target.ae_title}")
    return stored


def _partial(message: str, stored: list[StoredObject]) -> str:
    if not stored:
        return message + ". Nothing was stored in the PACS."
    return message + ". Already stored: " + ", ".join(s.path.name for s in stored) + "."
