//! Test helpers: privilege checks, temporary state roots, busybox bundles.
