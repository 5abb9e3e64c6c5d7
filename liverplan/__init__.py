"""LiverPlan: planning workstation for liver surgery (colorectal liver metastases)."""

__version__ = "0.1.0"
