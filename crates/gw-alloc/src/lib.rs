//! The gateway's global allocator: [mimalloc](https://github.com/microsoft/mimalloc) (v2).
//!
//! The `mimalloc` crate hands every request to `mi_malloc_aligned`, whatever the alignment.
//! That path costs more than `mi_malloc` even when it succeeds at once, and it falls back to
//! a generic aligned search for every block above 1 KiB (hyper's read buffers, boxed
//! futures). A proxy allocates about twenty times per request, so this wrapper calls the plain
//! entry points whenever the block they return is aligned enough anyway. mimalloc documents
//! that condition (`mi_malloc_is_naturally_aligned` in `alloc-aligned.c`): a block is aligned
//! to its size up to 16 bytes, so any `align <= 16` with `align <= size` is met by `mi_malloc`.
//! Everything else goes to the aligned entry points, as before.
//!
//! ```
//! #[global_allocator]
//! static GLOBAL: gw_alloc::MiMalloc = gw_alloc::MiMalloc;
//!
//! fn main() {
//!     let v: Vec<u64> = (0..1000).collect();
//!     assert_eq!(v.iter().sum::<u64>(), 499_500);
//! }
//! ```

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// `MI_MAX_ALIGN_SIZE`: mimalloc's size classes are multiples of 16 bytes above 8 bytes, so
/// a block of `size` bytes is aligned to 16, or to 8 when `size <= 8`.
const MAX_NATURAL_ALIGN: usize = 16;

/// mimalloc as the global allocator; see the crate documentation.
#[derive(Debug, Clone, Copy, Default)]
pub struct MiMalloc;

#[inline]
fn natural(align: usize, size: usize) -> bool {
    align <= MAX_NATURAL_ALIGN && align <= size
}

// SAFETY: every method forwards to the mimalloc function with the same contract; the plain
// (unaligned) ones are used only where mimalloc guarantees the requested alignment.
unsafe impl GlobalAlloc for MiMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: mimalloc accepts any size; a null return is passed on as the error.
        unsafe {
            if natural(layout.align(), layout.size()) {
                mi::mi_malloc(layout.size()).cast()
            } else {
                mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        unsafe {
            if natural(layout.align(), layout.size()) {
                mi::mi_zalloc(layout.size()).cast()
            } else {
                mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator; `mi_free` takes blocks of either entry point.
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout`; the new block keeps the
        // alignment by the same rule as `alloc`.
        unsafe {
            if natural(layout.align(), new_size) {
                mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

/// `mi_option_purge_delay` in mimalloc v2's `mimalloc.h`: the option right after
/// `mi_option_eager_commit_delay` (the bindings name only some options).
const MI_OPTION_PURGE_DELAY: mi::mi_option_t = mi::mi_option_eager_commit_delay + 1;

/// How long (milliseconds) mimalloc keeps freed memory before giving it back to the system
/// (`purge_delay`), unless the `MIMALLOC_PURGE_DELAY` environment variable says otherwise.
///
/// mimalloc's default is 10 ms. Under a steady request load that returns pages which are
/// needed again moments later: a proxy at 60 000 requests/s made a `madvise` every 20–40 ms
/// and took a page fault for every page of each purged span when it came back into use.
/// A second keeps what a steady load reuses; memory freed after a burst still goes back.
pub fn set_purge_delay(ms: i64) {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    let ms = std::ffi::c_long::try_from(ms).unwrap_or(std::ffi::c_long::MAX);
    // SAFETY: sets one of mimalloc's integer options; it may be called at any time.
    unsafe { mi::mi_option_set(MI_OPTION_PURGE_DELAY, ms) }
}

/// mimalloc's current `purge_delay` (milliseconds).
#[allow(clippy::useless_conversion)] // `c_long` is `i32` on some targets
pub fn purge_delay() -> i64 {
    // SAFETY: reads one of mimalloc's integer options.
    i64::from(unsafe { mi::mi_option_get(MI_OPTION_PURGE_DELAY) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_is_the_option_set() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        assert_eq!(
            purge_delay(),
            10,
            "mimalloc v2's default: the index names purge_delay"
        );
        set_purge_delay(1000);
        assert_eq!(purge_delay(), 1000);
    }

    #[test]
    fn blocks_have_the_alignment_asked_for() {
        let a = MiMalloc;
        for size in [1usize, 3, 8, 16, 24, 40, 100, 1000, 1025, 5000, 70_000] {
            for align in [1usize, 2, 4, 8, 16, 32, 64, 4096] {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: nonzero size; every block is freed with its layout.
                unsafe {
                    let p = a.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "alloc {size}/{align}");
                    p.write_bytes(0xAB, size);
                    let z = a.alloc_zeroed(layout);
                    assert_eq!(z as usize % align, 0, "zalloc {size}/{align}");
                    assert!(std::slice::from_raw_parts(z, size).iter().all(|&b| b == 0));
                    let grown = a.realloc(p, layout, size * 3);
                    assert_eq!(grown as usize % align, 0, "realloc {size}/{align}");
                    assert!(std::slice::from_raw_parts(grown, size)
                        .iter()
                        .all(|&b| b == 0xAB));
                    a.dealloc(grown, Layout::from_size_align(size * 3, align).unwrap());
                    a.dealloc(z, layout);
                }
            }
        }
    }
}
