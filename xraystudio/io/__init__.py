"""Reading and writing radiographs, masks and datasets. No Qt and no torch in here."""
