//! qcow2 (version 3) written from a sparse raw image.
