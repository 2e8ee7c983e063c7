//! docker-archive and OCI layout tarballs, and rootfs import.
