//! The memory a worker's QuickJS runtime lives in: one reserved region, handed out by a
//! size-class allocator whose whole state (the region's used prefix and the allocator's own free
//! lists) can be copied aside and copied back.
//!
//! Why: isolating runs with a fresh QuickJS context costs 100–170 µs a run (the intrinsics are
//! hundreds of objects and properties). Copying back the bytes of a runtime and context taken
//! right after they were set up (~340 KB) costs ~10 µs and restores *everything*
//! exactly: every built-in, hidden intrinsic, the global object, QuickJS's per-context state
//! (`Error.prepareStackTrace`, the stack trace limit, the job queue, the atom table, the memory
//! accounting). Nothing a run did survives, not even what a fresh context would share (the
//! runtime's symbol registry, interned atoms).
//!
//! Rules for whoever restores (see `worker.rs`): no JavaScript may be running, and no Rust handle
//! to a JavaScript value made after the snapshot may still exist (it would point at memory that
//! is no longer what it says). Values made after the snapshot are not finalized, so nothing made
//! after the snapshot may own memory outside the region (no Rust closures turned into JavaScript
//! functions during a run).

use std::alloc::{alloc, dealloc, Layout};
use std::cell::Cell;
use std::ptr::{self, NonNull};
use std::rc::Rc;

use rquickjs::allocator::Allocator;

/// Bytes before every block: its size. 16 keeps the caller's memory 16-byte aligned, like malloc.
const HEADER: usize = 16;
/// Blocks up to this size come in steps of 16 bytes.
const SMALL_MAX: usize = 1024;
/// Classes of small blocks (16, 32, … 1024).
const SMALL_CLASSES: usize = SMALL_MAX / HEADER;
/// Larger blocks come in 8 steps per doubling (at most 12.5 % rounding), up to 2^48 bytes.
const STEPS_PER_DOUBLING: usize = 8;
const CLASSES: usize = SMALL_CLASSES + (48 - 10) * STEPS_PER_DOUBLING;
/// The region's alignment: a page, so that a large region is its own mapping.
const REGION_ALIGN: usize = 4096;
/// Bytes an arena hands out past its limit once it has refused a block, so that QuickJS can
/// still build the `InternalError: out of memory` it throws (with its stack trace) however close
/// to the limit the refused block came. Without it, whether the error could be built was luck:
/// when it could not, the script's failure read as a thrown `null`.
pub(super) const OVER_LIMIT_RESERVE: usize = 256 * 1024;

/// Where the allocator stands: the first unused byte and the heads of the free lists (addresses
/// of free blocks, 0 for none; a free block's first word holds the next one's address).
#[derive(Clone)]
struct State {
    top: usize,
    free: Box<[usize; CLASSES]>,
    /// Bytes of the blocks handed out and not freed (headers and rounding included).
    live: usize,
}

/// One worker's region. Not `Send`: it belongs to the thread whose runtime uses it.
pub(super) struct Arena {
    region: NonNull<u8>,
    layout: Layout,
    state: State,
    /// Most live bytes (0: no limit but the region's size). The arena enforces the memory limit
    /// rather than QuickJS, so that it knows when the limit was hit (`refused`) and can leave
    /// room for the error that reports it.
    limit: usize,
    /// Set when a block was refused for the limit; the reserve is open from then on. Whoever
    /// runs scripts clears it before a run (it is not part of a snapshot).
    refused: Rc<Cell<bool>>,
}

/// Free blocks at least this large have their contents skipped by a restore (below it, one copy
/// is cheaper than splitting it).
const SKIP_FREE_FROM: usize = 512;

/// A copy of an arena's used bytes and allocator state, to go back to.
pub(super) struct Snapshot {
    bytes: Vec<u8>,
    /// The parts of `bytes` a restore copies back, as offsets: all of it but the contents of
    /// large free blocks, which nothing reads before it writes them (only their first word, the
    /// free list's link, matters). The set-up's freed temporaries are a quarter of a snapshot.
    copied: Vec<(usize, usize)>,
    state: State,
}

impl Snapshot {
    /// The bytes the snapshot spans (the arena's high-water mark when it was taken).
    pub(super) fn len(&self) -> usize {
        self.bytes.len()
    }

    /// The bytes a restore copies.
    #[cfg(test)]
    pub(super) fn copied_len(&self) -> usize {
        self.copied.iter().map(|(from, to)| to - from).sum()
    }
}

/// The size of the blocks of `class` (the inverse of [`class_of`]).
fn block_of_class(class: usize) -> usize {
    if class < SMALL_CLASSES {
        return (class + 1) * HEADER;
    }
    let k = 10 + (class - SMALL_CLASSES) / STEPS_PER_DOUBLING;
    let steps = 9 + (class - SMALL_CLASSES) % STEPS_PER_DOUBLING;
    steps << (k - 3)
}

/// The size of the block that holds `need` bytes (header included), and its class.
fn class_of(need: usize) -> Option<(usize, usize)> {
    if need <= SMALL_MAX {
        let block = need.max(HEADER).div_ceil(HEADER) * HEADER;
        return Some((block, block / HEADER - 1));
    }
    // need is in (2^k, 2^(k+1)]; round it up to a multiple of 2^k / 8.
    let k = usize::BITS as usize - 1 - (need - 1).leading_zeros() as usize;
    let step = 1usize << (k - 3);
    let block = need.checked_next_multiple_of(step)?;
    let class = SMALL_CLASSES + (k - 10) * STEPS_PER_DOUBLING + (block / step - 9);
    (class < CLASSES).then_some((block, class))
}

impl Arena {
    /// Reserves `size` bytes (address space; pages are used as they are touched), of which at
    /// most `limit` may be live at once (0: no limit), [`OVER_LIMIT_RESERVE`] more once a block
    /// was refused.
    pub(super) fn new(size: usize, limit: usize) -> Option<Self> {
        let layout = Layout::from_size_align(size.max(REGION_ALIGN), REGION_ALIGN).ok()?;
        // SAFETY: the layout has a non-zero size.
        let region = NonNull::new(unsafe { alloc(layout) })?;
        Some(Arena {
            region,
            layout,
            state: State {
                top: 0,
                free: Box::new([0; CLASSES]),
                live: 0,
            },
            limit,
            refused: Rc::default(),
        })
    }

    /// Set once a block has been refused for the memory limit (until cleared).
    pub(super) fn refused(&self) -> Rc<Cell<bool>> {
        Rc::clone(&self.refused)
    }

    /// Bytes of the region handed out so far (its high-water mark since the last restore).
    pub(super) fn used(&self) -> usize {
        self.state.top
    }

    /// Copies the used part of the region and the allocator's state.
    pub(super) fn snapshot(&self) -> Snapshot {
        let mut bytes = vec![0u8; self.state.top];
        // SAFETY: the first `top` bytes of the region are ours and initialized or not, they are
        // plain memory; `bytes` has room for them.
        unsafe { ptr::copy_nonoverlapping(self.region.as_ptr(), bytes.as_mut_ptr(), bytes.len()) };
        Snapshot {
            copied: self.copied_ranges(),
            bytes,
            state: self.state.clone(),
        }
    }

    /// `[0, top)` without the contents (all but the link word) of free blocks of at least
    /// [`SKIP_FREE_FROM`] bytes.
    fn copied_ranges(&self) -> Vec<(usize, usize)> {
        let base = self.region.as_ptr() as usize;
        let mut skipped = Vec::new();
        for (class, &head) in self.state.free.iter().enumerate() {
            let block = block_of_class(class);
            if block < SKIP_FREE_FROM {
                continue;
            }
            let mut next = head;
            while next != 0 {
                let offset = next - base;
                skipped.push((offset + size_of::<usize>(), offset + block));
                // SAFETY: a free block's first word holds the next free block of its class.
                next = unsafe { *(next as *const usize) };
            }
        }
        skipped.sort_unstable();
        let mut copied = Vec::with_capacity(skipped.len() + 1);
        let mut from = 0;
        for (skip_from, skip_to) in skipped {
            copied.push((from, skip_from));
            from = skip_to;
        }
        copied.push((from, self.state.top));
        copied
    }

    /// Puts the region back as it was at `snapshot` (taken from this arena).
    ///
    /// # Safety
    /// Nothing may use memory handed out after the snapshot, or rely on what was written since,
    /// once this returns: see the module's rules.
    pub(super) unsafe fn restore(&mut self, snapshot: &Snapshot) {
        debug_assert!(snapshot.bytes.len() <= self.layout.size());
        for &(from, to) in &snapshot.copied {
            ptr::copy_nonoverlapping(
                snapshot.bytes.as_ptr().add(from),
                self.region.as_ptr().add(from),
                to - from,
            );
        }
        self.state.top = snapshot.state.top;
        self.state.live = snapshot.state.live;
        self.state.free.copy_from_slice(&snapshot.state.free[..]);
    }

    /// Gives the pages between `from` and `to` (offsets, rounded inwards to pages) back to the
    /// system; they read as zeros when touched again. Only for memory no live block uses (above a
    /// restored snapshot's top). False where the platform offers no way to do it.
    pub(super) fn release(&mut self, from: usize, to: usize) -> bool {
        let from = from.next_multiple_of(REGION_ALIGN);
        let to = to.min(self.layout.size()) / REGION_ALIGN * REGION_ALIGN;
        if from >= to {
            return true;
        }
        // SAFETY: the range is inside the region, page-aligned, and holds no live block.
        unsafe { release_pages(self.region.as_ptr().add(from), to - from) }
    }

    fn alloc(&mut self, size: usize) -> *mut u8 {
        let Some((block, class)) = size.checked_add(HEADER).and_then(class_of) else {
            return ptr::null_mut();
        };
        if self.limit != 0 {
            let allowed = match self.refused.get() {
                false => self.limit,
                true => self.limit.saturating_add(OVER_LIMIT_RESERVE),
            };
            if self.state.live.saturating_add(block) > allowed {
                self.refused.set(true);
                return ptr::null_mut(); // QuickJS throws its out-of-memory error
            }
        }
        let head = self.state.free[class];
        let start = if head != 0 {
            // SAFETY: a free block's first word holds the next free block of its class.
            self.state.free[class] = unsafe { *(head as *const usize) };
            head as *mut u8
        } else {
            let Some(end) = self
                .state
                .top
                .checked_add(block)
                .filter(|&end| end <= self.layout.size())
            else {
                return ptr::null_mut(); // the region is full: QuickJS reports out of memory
            };
            // SAFETY: `top` is inside the region.
            let start = unsafe { self.region.as_ptr().add(self.state.top) };
            self.state.top = end;
            start
        };
        self.state.live += block;
        // SAFETY: the block is ours, at least HEADER bytes long and 16-byte aligned.
        unsafe {
            *(start as *mut usize) = block;
            start.add(HEADER)
        }
    }

    /// # Safety
    /// `ptr` came from this arena's `alloc` and was not freed since.
    unsafe fn free(&mut self, ptr: *mut u8) {
        let start = ptr.sub(HEADER);
        let block = *(start as *const usize);
        if let Some((_, class)) = class_of(block) {
            *(start as *mut usize) = self.state.free[class];
            self.state.free[class] = start as usize;
            self.state.live -= block;
        }
    }
}

/// `madvise(MADV_DONTNEED)`: the kernel drops the pages (anonymous memory reads back as zeros).
/// Declared here rather than through the `libc` crate, which the engine does not depend on; std
/// links the C library already. The region comes from the global allocator (mimalloc in the
/// `flowd` binary), which keeps freed memory mapped for reuse, so freeing the region would not
/// give the pages back: this does.
#[cfg(target_os = "linux")]
unsafe fn release_pages(start: *mut u8, len: usize) -> bool {
    const MADV_DONTNEED: std::ffi::c_int = 4;
    extern "C" {
        fn madvise(
            addr: *mut std::ffi::c_void,
            len: usize,
            advice: std::ffi::c_int,
        ) -> std::ffi::c_int;
    }
    madvise(start.cast(), len, MADV_DONTNEED) == 0
}

#[cfg(not(target_os = "linux"))]
unsafe fn release_pages(_start: *mut u8, _len: usize) -> bool {
    false
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.region.as_ptr(), self.layout) };
    }
}

/// What QuickJS allocates through: a pointer to the worker's arena, which outlives the runtime
/// (the worker drops its runtime before its arena).
pub(super) struct ArenaAllocator(pub(super) *mut Arena);

// SAFETY: blocks are 16-byte aligned, at least as large as asked, and `usable_size` reads the
// size `alloc` wrote before the block.
unsafe impl Allocator for ArenaAllocator {
    fn alloc(&mut self, size: usize) -> *mut u8 {
        // SAFETY: the arena outlives the runtime that calls this, on the arena's thread.
        unsafe { (*self.0).alloc(size) }
    }

    fn calloc(&mut self, count: usize, size: usize) -> *mut u8 {
        let Some(total) = count.checked_mul(size) else {
            return ptr::null_mut();
        };
        let block = self.alloc(total);
        if !block.is_null() {
            // SAFETY: the block has room for `total` bytes; recycled blocks are not zeroed.
            unsafe { ptr::write_bytes(block, 0, total) };
        }
        block
    }

    unsafe fn dealloc(&mut self, ptr: *mut u8) {
        if !ptr.is_null() {
            (*self.0).free(ptr);
        }
    }

    unsafe fn realloc(&mut self, ptr: *mut u8, new_size: usize) -> *mut u8 {
        if ptr.is_null() {
            return self.alloc(new_size);
        }
        if new_size == 0 {
            self.dealloc(ptr);
            return ptr::null_mut();
        }
        let usable = Self::usable_size(ptr);
        if new_size <= usable {
            return ptr; // it fits (shrinking keeps the block: it is reused when freed)
        }
        let moved = self.alloc(new_size);
        if !moved.is_null() {
            ptr::copy_nonoverlapping(ptr, moved, usable);
            self.dealloc(ptr);
        }
        moved
    }

    unsafe fn usable_size(ptr: *mut u8) -> usize {
        *(ptr.sub(HEADER) as *const usize) - HEADER
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_round_up_and_are_stable() {
        for need in [
            1,
            16,
            17,
            1024,
            1025,
            1100,
            2048,
            2049,
            1 << 20,
            (1 << 20) + 1,
            60 << 20,
        ] {
            let (block, class) = class_of(need).unwrap();
            assert!(block >= need && block % HEADER == 0, "{need} -> {block}");
            assert!(block - need <= (need / 8).max(HEADER), "{need} -> {block}");
            // A block's own size maps to its class, so freeing finds the list it came from.
            assert_eq!(class_of(block), Some((block, class)), "{need}");
        }
        assert!(class_of(usize::MAX).is_none());
    }

    #[test]
    fn every_class_knows_its_block_size() {
        for class in 0..CLASSES {
            let block = block_of_class(class);
            assert_eq!(class_of(block), Some((block, class)), "class {class}");
        }
    }

    #[test]
    fn a_restore_skips_large_free_blocks_but_keeps_their_links() {
        let mut arena = Arena::new(1 << 20, 0).unwrap();
        let mut a = ArenaAllocator(&mut arena);
        let first = a.alloc(5000);
        let second = a.alloc(5000);
        let kept = a.alloc(100);
        let small = a.alloc(100);
        unsafe {
            kept.write_bytes(7, 100);
            a.dealloc(first);
            a.dealloc(second);
            a.dealloc(small);
        }
        let snapshot = arena.snapshot();
        let block = class_of(5000 + HEADER).unwrap().0;
        assert_eq!(
            snapshot.len() - snapshot.copied_len(),
            2 * (block - size_of::<usize>()),
            "the two large free blocks' contents are skipped, the small one is copied"
        );
        // A run takes both large blocks, scribbles over everything, frees nothing.
        let mut a = ArenaAllocator(&mut arena);
        let (x, y) = (a.alloc(5000), a.alloc(5000));
        assert_eq!(
            (x, y),
            (second, first),
            "freed blocks are reused, newest first"
        );
        unsafe {
            x.sub(HEADER).write_bytes(0xAB, block);
            y.sub(HEADER).write_bytes(0xAB, block);
            kept.write_bytes(9, 100);
            arena.restore(&snapshot);
        }
        assert!(unsafe { std::slice::from_raw_parts(kept, 100) }
            .iter()
            .all(|&b| b == 7));
        // The free lists and their links are the snapshot's: the same blocks come back, in
        // order, and then the region goes on from the old top.
        let mut a = ArenaAllocator(&mut arena);
        assert_eq!(a.alloc(5000), second);
        assert_eq!(a.alloc(5000), first);
        assert_eq!(a.alloc(100), small);
        let fresh = a.alloc(5000);
        assert_eq!(
            fresh as usize,
            arena.region.as_ptr() as usize + snapshot.len() + HEADER
        );
    }

    #[test]
    fn restore_brings_back_bytes_and_free_lists() {
        let mut arena = Arena::new(1 << 20, 0).unwrap();
        let mut a = ArenaAllocator(&mut arena);
        let kept = a.alloc(100);
        let freed = a.alloc(40);
        unsafe {
            kept.write_bytes(7, 100);
            a.dealloc(freed);
        }
        let snapshot = arena.snapshot();
        let mut a = ArenaAllocator(&mut arena);
        let again = a.alloc(40);
        assert_eq!(again, freed, "a freed block is reused");
        let small = a.alloc(10);
        unsafe {
            let big = a.realloc(small, 5000);
            kept.write_bytes(9, 100);
            assert!(ArenaAllocator::usable_size(big) >= 5000);
        }
        unsafe { arena.restore(&snapshot) };
        assert_eq!(arena.used(), snapshot.len());
        assert!(unsafe { std::slice::from_raw_parts(kept, 100) }
            .iter()
            .all(|&b| b == 7));
        let mut a = ArenaAllocator(&mut arena);
        assert_eq!(a.alloc(40), freed, "the free list is the snapshot's");
        assert!(a.alloc(2 << 20).is_null(), "past the region: out of memory");
    }

    #[test]
    fn the_limit_counts_live_blocks_and_opens_a_reserve_once_hit() {
        let mut arena = Arena::new(4 << 20, 64 * 1024).unwrap();
        let refused = arena.refused();
        let mut a = ArenaAllocator(&mut arena);
        let first = a.alloc(40 * 1024);
        assert!(!first.is_null());
        // Freed blocks no longer count.
        unsafe { a.dealloc(first) };
        let kept = a.alloc(40 * 1024);
        assert!(!kept.is_null() && !refused.get());
        assert!(a.alloc(40 * 1024).is_null(), "over the limit");
        assert!(refused.get());
        // The reserve is open now: room for an error, not for another limit's worth.
        assert!(!a.alloc(1024).is_null());
        assert!(a.alloc(OVER_LIMIT_RESERVE).is_null());
    }
}
