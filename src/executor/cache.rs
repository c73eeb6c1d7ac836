//! `BlockCache`: freed task allocations kept for the next spawns of the
//! same size, so that a spawn and its join cost no trip through the global
//! allocator.
//!
//! A task's block (header and stage, see [`task`](super::task)) has one
//! size per future type. Blocks up to [`CACHED_SIZE_MAX`] bytes are
//! allocated in classes of [`CLASS_BYTES`] and 16-byte alignment, so one
//! freed block serves any later task of its class. The cache belongs to one
//! core, is touched only on its thread, and holds at most its budget in
//! bytes (`Config::task_cache_bytes`); a block it has no room for goes back
//! to the allocator. A block in the cache is plain memory: no task lives in
//! it.
//!
//! Debug builds cache nothing, so that every freed block reaches the
//! allocator and AddressSanitizer sees any use after free; release builds,
//! which the tests also run, recycle.

use std::alloc::{self, Layout};
use std::cell::{Cell, UnsafeCell};
use std::ptr::NonNull;

/// The size step between two classes, and the alignment of every class.
pub(super) const CLASS_BYTES: usize = 16;

/// The largest block that is cached; larger ones always go to the allocator.
pub(super) const CACHED_SIZE_MAX: usize = 1024;

const CLASSES: usize = CACHED_SIZE_MAX / CLASS_BYTES;

/// Whether freed blocks are kept at all (see the module docs).
const RECYCLE: bool = !cfg!(debug_assertions);

/// The class of a block of `layout`, when such blocks are cached.
#[inline]
const fn class_of(layout: Layout) -> Option<usize> {
    if layout.size() == 0 || layout.size() > CACHED_SIZE_MAX || layout.align() > CLASS_BYTES {
        return None;
    }
    Some((layout.size() - 1) / CLASS_BYTES)
}

/// The layout a task block of `layout` is allocated (and freed) with: its
/// class's, when it has one.
#[inline]
pub(super) fn block_layout(layout: Layout) -> Layout {
    match class_of(layout) {
        Some(class) => match Layout::from_size_align((class + 1) * CLASS_BYTES, CLASS_BYTES) {
            Ok(layout) => layout,
            Err(_) => unreachable!("a class is a small multiple of its alignment"),
        },
        None => layout,
    }
}

/// See the module docs.
pub(super) struct BlockCache {
    /// Free blocks per class. Owner thread only; the methods finish before
    /// returning and call nothing but the allocator.
    classes: UnsafeCell<[Vec<NonNull<u8>>; CLASSES]>,
    /// Bytes held in `classes`.
    held: Cell<usize>,
    /// The most `held` may reach; 0 once the core has shut down.
    budget: Cell<usize>,
}

// SAFETY: the cached blocks are plain memory that no task uses and nothing
// else points to: the cache owns them, and freeing them on another thread
// (when the last waker of a task drops the scheduler there) is what any
// allocation allows.
unsafe impl Send for BlockCache {}

impl BlockCache {
    /// An empty cache that holds at most `budget` bytes.
    pub(super) fn new(budget: usize) -> BlockCache {
        BlockCache {
            classes: UnsafeCell::new([const { Vec::new() }; CLASSES]),
            held: Cell::new(0),
            budget: Cell::new(if RECYCLE { budget } else { 0 }),
        }
    }

    /// Runs `f` on the classes.
    #[inline]
    fn with<R>(&self, f: impl FnOnce(&mut [Vec<NonNull<u8>>; CLASSES]) -> R) -> R {
        // SAFETY: owner thread only (the cache lives in the scheduler's
        // owner part), and `f` is one of this module's method bodies, which
        // call nothing that could reach the cache again.
        f(unsafe { &mut *self.classes.get() })
    }

    /// A block for a task of `layout`: a cached one of its class, or a new
    /// one from the allocator. Uninitialised, of [`block_layout`]`(layout)`.
    #[inline]
    pub(super) fn allocate(&self, layout: Layout) -> NonNull<u8> {
        if let Some(class) = class_of(layout) {
            if let Some(block) = self.with(|classes| classes[class].pop()) {
                self.held.set(self.held.get() - (class + 1) * CLASS_BYTES);
                return block;
            }
        }
        allocate_new(layout)
    }

    /// Keeps `block`, a block for a task of `layout` whose task is gone,
    /// for a later spawn; gives it back to the allocator when the cache is
    /// full or closed.
    ///
    /// # Safety
    ///
    /// `block` came from [`allocate`](Self::allocate) (of this cache or
    /// [`allocate_new`]) with this `layout`, and nothing uses it any more.
    #[inline]
    pub(super) unsafe fn free(&self, block: NonNull<u8>, layout: Layout) {
        if let Some(class) = class_of(layout) {
            let size = (class + 1) * CLASS_BYTES;
            if self.held.get() + size <= self.budget.get() {
                self.held.set(self.held.get() + size);
                return self.with(|classes| classes[class].push(block));
            }
        }
        // SAFETY: forwarded to the caller.
        unsafe { free_now(block, layout) }
    }

    /// Bytes of blocks held for reuse.
    #[cfg(test)]
    pub(super) fn held_bytes(&self) -> usize {
        self.held.get()
    }

    /// At shutdown: gives every block back and keeps none from now on.
    pub(super) fn close(&self) {
        self.budget.set(0);
        self.held.set(0);
        let classes =
            self.with(|classes| std::mem::replace(classes, [const { Vec::new() }; CLASSES]));
        for (class, blocks) in classes.into_iter().enumerate() {
            let layout = Layout::from_size_align((class + 1) * CLASS_BYTES, CLASS_BYTES);
            let layout = layout.expect("a class is a small multiple of its alignment");
            for block in blocks {
                // SAFETY: every cached block of `class` was allocated with
                // its class's layout, and is no task's any more.
                unsafe { alloc::dealloc(block.as_ptr(), layout) };
            }
        }
    }
}

impl Drop for BlockCache {
    fn drop(&mut self) {
        self.close();
    }
}

/// A new block for a task of `layout`, from the allocator.
#[inline]
pub(super) fn allocate_new(layout: Layout) -> NonNull<u8> {
    let layout = block_layout(layout);
    // SAFETY: a task block is never zero-sized (it holds the header).
    let block = unsafe { alloc::alloc(layout) };
    NonNull::new(block).unwrap_or_else(|| alloc::handle_alloc_error(layout))
}

/// Gives `block`, a block for a task of `layout`, back to the allocator.
///
/// # Safety
///
/// As [`BlockCache::free`].
#[inline]
pub(super) unsafe fn free_now(block: NonNull<u8>, layout: Layout) {
    // SAFETY: forwarded: the block was allocated with this layout.
    unsafe { alloc::dealloc(block.as_ptr(), block_layout(layout)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_of_one_class_serve_each_other() {
        let small = Layout::from_size_align(72, 8).unwrap();
        let near = Layout::from_size_align(80, 16).unwrap();
        assert_eq!(block_layout(small), block_layout(near));
        assert_eq!(block_layout(small).size(), 80);
        let large = Layout::from_size_align(CACHED_SIZE_MAX + 1, 8).unwrap();
        assert_eq!(block_layout(large), large, "not cached: its own layout");
        let aligned = Layout::from_size_align(64, 64).unwrap();
        assert_eq!(block_layout(aligned), aligned);
    }

    #[test]
    fn a_freed_block_comes_back_within_the_budget() {
        let layout = Layout::from_size_align(72, 8).unwrap();
        let cache = BlockCache::new(160);
        let blocks: Vec<_> = (0..3).map(|_| cache.allocate(layout)).collect();
        for &block in &blocks {
            // SAFETY: allocated just above with `layout`, unused.
            unsafe { cache.free(block, layout) };
        }
        let cached = if RECYCLE { 2 } else { 0 };
        assert_eq!(cache.held.get(), cached * 80, "two blocks fit in 160 bytes");
        let again = cache.allocate(layout);
        if RECYCLE {
            assert_eq!(again, blocks[1], "the last block kept comes back first");
        }
        // SAFETY: as above.
        unsafe { cache.free(again, layout) };
        cache.close();
        assert_eq!(cache.held.get(), 0);
        let after = cache.allocate(layout);
        // SAFETY: as above; a closed cache keeps nothing.
        unsafe { cache.free(after, layout) };
        assert_eq!(cache.held.get(), 0);
    }
}
