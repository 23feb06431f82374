//! Decoding a checkpoint's tenant parts on every core: they are
//! independent, and decoding JSON is most of a cold start. One helper for
//! both backends that store a checkpoint in parts (sled, PostgreSQL).

use super::StoreError;

/// `f` of every item, on up to 8 threads, the results in the items'
/// order. On failures, the error of the first failing item: the same one
/// a one-by-one loop would report.
pub(crate) fn in_order<T, R>(
    items: &[T],
    f: impl Fn(usize, &T) -> Result<R, StoreError> + Sync,
) -> Result<Vec<R>, StoreError>
where
    T: Sync,
    R: Send,
{
    let workers = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .clamp(1, 8)
        .min(items.len().max(1));
    let f = &f;
    let done: Vec<Vec<(usize, Result<R, StoreError>)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                scope.spawn(move || {
                    items
                        .iter()
                        .enumerate()
                        .skip(w)
                        .step_by(workers)
                        .map(|(i, item)| (i, f(i, item)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    vec![(
                        0,
                        Err(StoreError::Backend("a checkpoint reader panicked".into())),
                    )]
                })
            })
            .collect()
    });
    let mut slots: Vec<Option<R>> = Vec::new();
    slots.resize_with(items.len(), || None);
    let mut first_error: Option<(usize, StoreError)> = None;
    for (i, result) in done.into_iter().flatten() {
        match result {
            Ok(r) => {
                if let Some(slot) = slots.get_mut(i) {
                    *slot = Some(r);
                }
            }
            Err(e) if first_error.as_ref().is_none_or(|(j, _)| i < *j) => {
                first_error = Some((i, e));
            }
            Err(_) => {}
        }
    }
    if let Some((_, e)) = first_error {
        return Err(e);
    }
    let out: Vec<R> = slots.into_iter().flatten().collect();
    if out.len() != items.len() {
        return Err(StoreError::Backend("a checkpoint part was not read".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_in_order_and_the_first_error_wins() {
        let items: Vec<u32> = (0..100).collect();
        let doubled = in_order(&items, |_, n| Ok(n * 2)).unwrap();
        assert_eq!(doubled, (0..100).map(|n| n * 2).collect::<Vec<_>>());
        let failed = in_order(&items, |i, _| {
            if i % 7 == 3 {
                Err(StoreError::Backend(format!("item {i}")))
            } else {
                Ok(i)
            }
        });
        assert!(matches!(failed, Err(StoreError::Backend(m)) if m == "item 3"));
        assert!(
            in_order(&Vec::<u32>::new(), |_, n| Ok(*n))
                .unwrap()
                .is_empty()
        );
    }
}
