//! Fixed-width bitsets over a tenant's roles, stored in flat `u64` arenas.

/// How many `u64` words hold `n` bits (at least one, so slices are never empty).
pub fn words_for(n: usize) -> usize {
    n.div_ceil(64).max(1)
}

/// Sets bit `i`.
pub fn set(bits: &mut [u64], i: usize) {
    if let Some(w) = bits.get_mut(i / 64) {
        *w |= 1 << (i % 64);
    }
}

/// Whether bit `i` is set.
pub fn get(bits: &[u64], i: usize) -> bool {
    bits.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
}

/// Whether `a` and `b` share a bit.
#[inline]
pub fn intersects(a: &[u64], b: &[u64]) -> bool {
    a.iter().zip(b).any(|(x, y)| x & y != 0)
}

/// `into |= from`.
pub fn or_into(into: &mut [u64], from: &[u64]) {
    for (a, b) in into.iter_mut().zip(from) {
        *a |= b;
    }
}

/// The indices of the set bits, ascending.
pub fn ones(bits: &[u64]) -> impl Iterator<Item = usize> + '_ {
    bits.iter().enumerate().flat_map(|(w, &word)| {
        (0..64)
            .filter(move |b| word & (1 << b) != 0)
            .map(move |b| w * 64 + b)
    })
}

/// The union of two bitsets, read without building it: a user's own roles
/// and the roles of the groups that list it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Union<'a>(pub &'a [u64], pub &'a [u64]);

impl Union<'_> {
    /// Whether the union shares a bit with `other`.
    #[inline]
    pub fn intersects(&self, other: &[u64]) -> bool {
        intersects(self.0, other) || intersects(self.1, other)
    }

    /// Whether bit `i` is set in either.
    #[inline]
    pub fn get(&self, i: usize) -> bool {
        get(self.0, i) || get(self.1, i)
    }

    /// The union, built.
    pub fn to_vec(&self) -> Vec<u64> {
        let mut all = vec![0; self.0.len().max(self.1.len())];
        or_into(&mut all, self.0);
        or_into(&mut all, self.1);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_operations() {
        let mut a = vec![0u64; words_for(130)];
        assert_eq!(a.len(), 3);
        set(&mut a, 0);
        set(&mut a, 129);
        assert!(get(&a, 129) && !get(&a, 128));
        let mut b = vec![0u64; 3];
        set(&mut b, 129);
        assert!(intersects(&a, &b));
        assert_eq!(ones(&a).collect::<Vec<_>>(), vec![0, 129]);
        let mut c = vec![0u64; 3];
        or_into(&mut c, &a);
        assert_eq!(c, a);
        assert_eq!(words_for(0), 1);
        let mut d = vec![0u64; 3];
        set(&mut d, 5);
        let u = Union(&d, &b);
        assert!(u.get(5) && u.get(129) && !u.get(0));
        assert!(u.intersects(&a) && !Union(&d, &[]).intersects(&a));
        assert_eq!(ones(&u.to_vec()).collect::<Vec<_>>(), vec![5, 129]);
    }
}
