//! streamOptimized VMDK (VMware Virtual Disk Format 5.0, "Stream-Optimized Compressed Sparse Extents").
