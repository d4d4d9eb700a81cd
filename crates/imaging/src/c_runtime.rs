//! The few C library functions the JPEG 2000 decoder calls, for wasm32-unknown-unknown.
//!
//! `openjp2` (under `jpeg2k`, behind dicom-pixeldata's `openjp2` feature) is OpenJPEG's C
//! machine-translated to Rust, and it still declares and calls C's `malloc`, `calloc`, `realloc`,
//! `free` and `strcpy`. Native targets link them from the system's C library; wasm32-unknown-unknown
//! has none, so without this module the linker leaves exactly those five as imports from a module
//! named `env` and the browser refuses to instantiate the Wasm. (The `memcpy`, `memset`, `memmove`
//! and `libm` functions it also calls come with Rust's `compiler_builtins` on this target; the
//! `strcmp`, `strncmp` and `strlen` it declares are not reached when decoding.)
//!
//! They are defined here on Rust's global allocator, unmangled in wasm32 builds, so every Wasm
//! consumer of this crate gets them by linking it (natively the module is compiled only for its unit
//! tests, under Rust names, beside the real C library). Linking also exports them from a `cdylib`
//! (harmless: nothing calls them from JavaScript).
//!
//! It also sets wasm32's global allocator to one that ignores a null `dealloc` (openjp2 makes
//! such calls; see `allocator` below).
//!
//! Rust's `dealloc` and `realloc` need the block's [`Layout`], which C's `free` and `realloc` are not
//! given, so each block carries a header of [`HEADER`] bytes in front of the pointer handed out,
//! holding the size the caller asked for. Every block is aligned to [`ALIGN`], C's `max_align_t` on
//! wasm32, and the header is as long as that alignment so the pointer after it stays aligned.

use core::ffi::{c_char, c_void};
use core::ptr::null_mut;
use std::alloc::{Layout, alloc, alloc_zeroed, dealloc, realloc as grow};

/// Alignment of every block: `max_align_t` on wasm32 (what C's `malloc` promises).
const ALIGN: usize = 16;
/// Bytes in front of each block holding its requested size; a multiple of [`ALIGN`].
const HEADER: usize = ALIGN;

/// The layout of a whole block (header included) for `size` requested bytes, if it fits.
fn block_layout(size: usize) -> Option<Layout> {
    Layout::from_size_align(size.checked_add(HEADER)?, ALIGN).ok()
}

/// Writes `size` into the header at `base` and returns the pointer handed to C (null stays null).
///
/// # Safety
/// `base` is null or the start of a block of at least `HEADER + size` bytes aligned to [`ALIGN`].
unsafe fn hand_out(base: *mut u8, size: usize) -> *mut c_void {
    if base.is_null() {
        return null_mut();
    }
    // SAFETY: the block starts with HEADER ≥ size_of::<usize>() bytes, aligned for a usize.
    unsafe {
        base.cast::<usize>().write(size);
        base.add(HEADER).cast()
    }
}

/// The start of the block behind `ptr` and its layout.
///
/// # Safety
/// `ptr` came from this module's `malloc`, `calloc` or `realloc` and was not freed.
unsafe fn block_of(ptr: *mut c_void) -> (*mut u8, Layout) {
    // SAFETY: hand_out returned `base + HEADER` and stored the size at `base`.
    unsafe {
        let base = ptr.cast::<u8>().sub(HEADER);
        let size = base.cast::<usize>().read();
        // The layout was valid when the block was made, so it still is.
        (base, block_layout(size).unwrap_unchecked())
    }
}

/// C `malloc`: `size` bytes, uninitialised, aligned to [`ALIGN`]; null when out of memory.
#[cfg_attr(all(target_arch = "wasm32", target_os = "unknown"), unsafe(no_mangle))]
pub unsafe extern "C" fn malloc(size: usize) -> *mut c_void {
    match block_layout(size) {
        // SAFETY: the layout's size is at least HEADER, never zero; alloc gives that many bytes.
        Some(layout) => unsafe { hand_out(alloc(layout), size) },
        None => null_mut(),
    }
}

/// C `calloc`: `count × size` zeroed bytes; null on overflow or when out of memory.
#[cfg_attr(all(target_arch = "wasm32", target_os = "unknown"), unsafe(no_mangle))]
pub unsafe extern "C" fn calloc(count: usize, size: usize) -> *mut c_void {
    match count.checked_mul(size).and_then(|total| Some((total, block_layout(total)?))) {
        // SAFETY: as in malloc.
        Some((total, layout)) => unsafe { hand_out(alloc_zeroed(layout), total) },
        None => null_mut(),
    }
}

/// C `realloc`: the block moved or resized to `size` bytes, its first bytes kept; null (and the
/// old block untouched) when out of memory. A null `ptr` is `malloc`; a zero `size` frees and
/// returns null (openjp2 never asks for it).
#[cfg_attr(all(target_arch = "wasm32", target_os = "unknown"), unsafe(no_mangle))]
pub unsafe extern "C" fn realloc(ptr: *mut c_void, size: usize) -> *mut c_void {
    if ptr.is_null() {
        // SAFETY: forwarding the caller's request.
        return unsafe { malloc(size) };
    }
    if size == 0 {
        // SAFETY: the caller hands a live block, as C requires.
        unsafe { free(ptr) };
        return null_mut();
    }
    let Some(new_layout) = block_layout(size) else {
        return null_mut();
    };
    // SAFETY: `ptr` is a live block of ours (C's contract); the new size is non-zero and valid for
    // the alignment (checked by block_layout); `grow` copies min(old, new) bytes, header included,
    // and we rewrite the header with the new size.
    unsafe {
        let (base, layout) = block_of(ptr);
        hand_out(grow(base, layout, new_layout.size()), size)
    }
}

/// C `free`: gives a block back; null is ignored.
#[cfg_attr(all(target_arch = "wasm32", target_os = "unknown"), unsafe(no_mangle))]
pub unsafe extern "C" fn free(ptr: *mut c_void) {
    if ptr.is_null() {
        return;
    }
    // SAFETY: `ptr` is a live block of ours (C's contract), allocated with this layout.
    unsafe {
        let (base, layout) = block_of(ptr);
        dealloc(base, layout);
    }
}

/// C `strcpy`: copies the NUL-terminated `src`, NUL included, to `dst`; returns `dst`.
#[cfg_attr(all(target_arch = "wasm32", target_os = "unknown"), unsafe(no_mangle))]
pub unsafe extern "C" fn strcpy(dst: *mut c_char, src: *const c_char) -> *mut c_char {
    let mut i = 0;
    // SAFETY: C's contract: `src` is NUL-terminated and `dst` has room for it.
    unsafe {
        loop {
            let c = *src.add(i);
            *dst.add(i) = c;
            if c == 0 {
                return dst;
            }
            i += 1;
        }
    }
}

/// Rust's global allocator for wasm32-unknown-unknown: the standard one (`System`, dlmalloc) except
/// that freeing null does nothing. openjp2 hands code blocks it never filled (null pointer, zeroed
/// `Layout`) straight to Rust's `dealloc` when it destroys a codec; the system allocator of native
/// targets ends in C's `free`, which ignores null, but dlmalloc reads the chunk header in front of
/// it and traps ("memory access out of bounds"), as the browser conformance test showed.
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
mod allocator {
    use std::alloc::{GlobalAlloc, Layout, System};

    struct NullTolerant;

    // SAFETY: every call goes to System unchanged, except dealloc of null, which frees nothing.
    unsafe impl GlobalAlloc for NullTolerant {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            unsafe { System.alloc(layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            unsafe { System.alloc_zeroed(layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            unsafe { System.realloc(ptr, layout, new_size) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            if !ptr.is_null() {
                unsafe { System.dealloc(ptr, layout) }
            }
        }
    }

    #[global_allocator]
    static GLOBAL: NullTolerant = NullTolerant;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_aligned_kept_across_realloc_and_freed() {
        unsafe {
            let p = malloc(5).cast::<u8>();
            assert!(!p.is_null());
            assert_eq!(p as usize % ALIGN, 0);
            p.copy_from(b"hello".as_ptr(), 5);
            let q = realloc(p.cast(), 100_000).cast::<u8>();
            assert_eq!(q as usize % ALIGN, 0);
            assert_eq!(std::slice::from_raw_parts(q, 5), b"hello", "grown block keeps its bytes");
            let r = realloc(q.cast(), 3).cast::<u8>();
            assert_eq!(std::slice::from_raw_parts(r, 3), b"hel", "shrunk block keeps its first bytes");
            free(r.cast());
            free(null_mut());
            let s = realloc(null_mut(), 8);
            assert!(!s.is_null(), "realloc of null is malloc");
            assert!(realloc(s, 0).is_null(), "realloc to 0 frees");
        }
    }

    #[test]
    fn calloc_zeroes_and_refuses_overflow() {
        unsafe {
            let p = calloc(1000, 4).cast::<u8>();
            assert!(std::slice::from_raw_parts(p, 4000).iter().all(|&b| b == 0));
            free(p.cast());
            assert!(calloc(usize::MAX / 2, 3).is_null());
            assert!(malloc(usize::MAX - 4).is_null());
        }
    }

    #[test]
    fn strcpy_copies_up_to_and_with_the_nul() {
        let mut buf = [0x55 as c_char; 8];
        unsafe {
            let out = strcpy(buf.as_mut_ptr(), c"abc".as_ptr());
            assert_eq!(out, buf.as_mut_ptr());
            assert_eq!(core::ffi::CStr::from_ptr(out).to_bytes(), b"abc");
            assert_eq!(buf[4], 0x55, "nothing written past the NUL");
        }
    }
}
