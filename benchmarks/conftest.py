import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # tblite must not oversubscribe the cores
