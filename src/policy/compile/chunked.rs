//! A persistent vector made of plain chunks: an index is two loads (the
//! chunk, then the slot), a copy is one `Arc`, a change copies the table of
//! chunk pointers and the one chunk it falls in.
//!
//! `imbl::Vector` is a tree of 64-slot nodes whose lookup walks it; on the
//! path of every check (a user's cohort) it cost about 25 ns more than
//! this (`cargo bench --bench evaluate`, BENCHMARKS.md).

use std::sync::Arc;

/// Entries per chunk.
const CHUNK: usize = 1024;

/// A persistent vector: O(1) to copy, O(chunk) to change.
#[derive(Debug)]
pub(crate) struct Chunked<T> {
    chunks: Arc<Vec<Arc<Vec<T>>>>,
    len: usize,
}

impl<T> Clone for Chunked<T> {
    fn clone(&self) -> Self {
        Self {
            chunks: Arc::clone(&self.chunks),
            len: self.len,
        }
    }
}

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Self {
            chunks: Arc::default(),
            len: 0,
        }
    }
}

impl<T: Clone> Chunked<T> {
    /// How many entries.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Entry `i`.
    #[inline]
    pub(crate) fn get(&self, i: usize) -> Option<&T> {
        self.chunks.get(i / CHUNK)?.get(i % CHUNK)
    }

    /// Appends `value`; returns its index.
    pub(crate) fn push(&mut self, value: T) -> usize {
        let chunks = Arc::make_mut(&mut self.chunks);
        match chunks.last_mut() {
            Some(last) if last.len() < CHUNK => Arc::make_mut(last).push(value),
            _ => {
                // The first chunk grows as it fills (most tenants' cohorts
                // need less than a chunk); later ones are made whole.
                let mut chunk = if chunks.is_empty() {
                    Vec::new()
                } else {
                    Vec::with_capacity(CHUNK)
                };
                chunk.push(value);
                chunks.push(Arc::new(chunk));
            }
        }
        self.len += 1;
        self.len - 1
    }

    /// Sets entry `i` to `value` (nothing if there is no entry `i`).
    pub(crate) fn set(&mut self, i: usize, value: T) {
        if i >= self.len {
            return;
        }
        let chunks = Arc::make_mut(&mut self.chunks);
        if let Some(slot) = chunks
            .get_mut(i / CHUNK)
            .and_then(|c| Arc::make_mut(c).get_mut(i % CHUNK))
        {
            *slot = value;
        }
    }

    /// Frees the room a chunk keeps for entries it has not got.
    pub(crate) fn shrink_to_fit(&mut self) {
        if let Some(last) = Arc::make_mut(&mut self.chunks).last_mut() {
            Arc::make_mut(last).shrink_to_fit();
        }
    }

    /// Every entry, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flat_map(|c| c.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_as_a_vector_and_copies_keep_theirs() {
        let mut v: Chunked<u32> = Chunked::default();
        let mut model = Vec::new();
        let mut copies = Vec::new();
        for i in 0..(3 * CHUNK as u32 + 7) {
            assert_eq!(v.push(i), model.len());
            model.push(i);
            if i % 5 == 0 {
                let at = (i as usize * 7) % model.len();
                v.set(at, i + 1_000_000);
                model[at] = i + 1_000_000;
            }
            if i % 1000 == 0 {
                copies.push((v.clone(), model.clone()));
            }
        }
        v.set(model.len(), 1); // out of range: nothing
        v.shrink_to_fit();
        copies.push((v, model));
        for (v, model) in &copies {
            assert_eq!(v.len(), model.len());
            assert_eq!(v.iter().copied().collect::<Vec<_>>(), *model);
            assert!((0..model.len()).all(|i| v.get(i) == model.get(i)));
            assert_eq!(v.get(model.len()), None);
        }
    }
}
