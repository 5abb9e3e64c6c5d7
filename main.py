"""Start the LiverPlan desktop app: python main.py [DICOM folder or image file]."""

import sys

from liverplan.viewers.app import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
