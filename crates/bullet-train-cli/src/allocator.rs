//! The global allocator, mimalloc, and the call that returns memory freed after start-up to the
//! operating system: the binary's only unsafe code.

/// mimalloc: the server allocates per request (headers, identity responses), and glibc's allocator
/// cost about a tenth of a request's time in profiles.
#[global_allocator]
static ALLOCATOR: Mimalloc = Mimalloc;

/// mimalloc through its plain entry points whenever the alignment asked for is at most a word,
/// which every mimalloc block has (block sizes are whole words). The `mimalloc` crate calls the
/// aligned entry points for every allocation, and mimalloc 3 serves those, once a size class has no
/// free block at hand, by over-allocating whenever the size is not a power of two: about four times
/// per `flags/` request, a tenth of the allocator's time (`docs/benchmarks/request-path.md`).
struct Mimalloc;

/// The alignment of every block mimalloc hands out.
const WORD: usize = std::mem::size_of::<usize>();

// SAFETY (every function): each forwards to the mimalloc function with the same contract as the
// `GlobalAlloc` method; the plain functions are used only when `layout.align() <= WORD`, an
// alignment every pointer they return has (size classes are whole words, and a page's first block
// starts at least 16 bytes in). A block is reallocated with the alignment it was allocated with
// (Rust passes the same layout), so by the same family; `mi_free` frees blocks of either family.
#[allow(unsafe_code)]
unsafe impl std::alloc::GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        use libmimalloc_sys::{mi_malloc, mi_malloc_aligned};
        let p = if layout.align() <= WORD {
            unsafe { mi_malloc(layout.size()) }
        } else {
            unsafe { mi_malloc_aligned(layout.size(), layout.align()) }
        };
        p.cast()
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        use libmimalloc_sys::{mi_zalloc, mi_zalloc_aligned};
        let p = if layout.align() <= WORD {
            unsafe { mi_zalloc(layout.size()) }
        } else {
            unsafe { mi_zalloc_aligned(layout.size(), layout.align()) }
        };
        p.cast()
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: std::alloc::Layout) {
        unsafe { libmimalloc_sys::mi_free(ptr.cast()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        use libmimalloc_sys::{mi_realloc, mi_realloc_aligned};
        let p = if layout.align() <= WORD {
            unsafe { mi_realloc(ptr.cast(), new_size) }
        } else {
            unsafe { mi_realloc_aligned(ptr.cast(), new_size, layout.align()) }
        };
        p.cast()
    }
}

/// Returns the memory that start-up used and freed (reading and compiling every environment,
/// building the router) to the operating system now. mimalloc purges freed pages lazily, on later
/// allocator activity, which a server idling after start does not have; without this an idle
/// server holds a few MiB it no longer uses.
#[allow(unsafe_code)]
pub(crate) fn release_free_memory() {
    // SAFETY: `mi_collect` takes no pointers and has no preconditions; it only walks mimalloc's
    // own structures, and may be called from any thread at any time.
    unsafe { libmimalloc_sys::mi_collect(true) }
}
