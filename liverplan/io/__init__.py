"""Loading and writing images and plans: DICOM, NIfTI/NRRD/MHA, the synthetic patient, exports."""
