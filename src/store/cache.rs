//! In-process read caches for the hottest reads (the caller behind a token,
//! the caller's access to a circle, a circle's first feed page), invalidated
//! by the writes that change them.
//!
//! Correctness rests on one rule: a reader notes the generation *before* it
//! reads the database, and a writer bumps the generation of what it changed
//! *after* its transaction commits (see [`super::Tx::touch`]). An entry is
//! served only while nothing it depends on has changed since its reader
//! noted the generation, so an entry built from a snapshot older than a
//! commit can never outlive that commit's request.
//!
//! Invalidation is local to the process. That is complete on SQLite (one
//! Kring process per database file) and not across several instances on
//! PostgreSQL, so the caches are on by default for SQLite only
//! (`KRING_READ_CACHE`).

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// What a cached entry depends on, and what a write changes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// An account: its sessions, tokens, role and deactivation.
    Account(String),
    /// A circle: its settings, memberships, posts and reactions.
    Circle(String),
}

/// The generation counter and, per scope, the generation of its last change.
#[derive(Debug, Default)]
pub struct Generations {
    enabled: AtomicBool,
    clock: AtomicU64,
    changed: RwLock<HashMap<Scope, u64>>,
}

impl Generations {
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled: AtomicBool::new(enabled),
            ..Self::default()
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    pub fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::Relaxed);
    }

    /// Note the generation before reading what will be cached.
    pub fn before_read(&self) -> u64 {
        self.clock.load(Ordering::SeqCst)
    }

    /// Marks `scopes` changed. Call after the change has committed.
    pub fn invalidate<'a>(&self, scopes: impl IntoIterator<Item = &'a Scope>) {
        let mut changed = self.changed.write().unwrap_or_else(PoisonError::into_inner);
        let generation = self.clock.fetch_add(1, Ordering::SeqCst) + 1;
        for scope in scopes {
            changed.insert(scope.clone(), generation);
        }
    }

    /// True when none of `scopes` changed after a read noted at `read_at`.
    fn unchanged_since(&self, read_at: u64, scopes: &[Scope]) -> bool {
        let changed = self.changed.read().unwrap_or_else(PoisonError::into_inner);
        scopes
            .iter()
            .all(|s| changed.get(s).is_none_or(|&g| g <= read_at))
    }
}

struct Entry<V> {
    read_at: u64,
    stored: Instant,
    scopes: Vec<Scope>,
    cost: usize,
    value: V,
}

struct Entries<K, V> {
    map: HashMap<K, Entry<V>>,
    /// The sum of the entries' costs.
    cost: usize,
}

/// One cache: a map whose entries are checked against [`Generations`] on
/// every hit and expire after `ttl` as a backstop. Each entry has a cost (1
/// per entry, or its size in bytes) and the total stays within `budget`.
pub struct Shelf<K, V> {
    entries: Mutex<Entries<K, V>>,
    budget: usize,
    ttl: Duration,
}

impl<K: Eq + Hash, V: Clone> Shelf<K, V> {
    pub fn new(budget: usize, ttl: Duration) -> Self {
        Self {
            entries: Mutex::new(Entries {
                map: HashMap::new(),
                cost: 0,
            }),
            budget,
            ttl,
        }
    }

    /// The entry for `key` if it is still valid.
    pub fn get<Q>(&self, generations: &Generations, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        if !generations.enabled() {
            return None;
        }
        let entries = self.lock();
        let entry = entries.map.get(key)?;
        (entry.stored.elapsed() < self.ttl
            && generations.unchanged_since(entry.read_at, &entry.scopes))
        .then(|| entry.value.clone())
    }

    /// Stores `value`, read after [`Generations::before_read`] returned
    /// `read_at`, depending on `scopes`, at `cost` of the budget. When the
    /// budget would be exceeded the shelf starts over: simple, bounded, and
    /// rare at a circle's scale. A value costing more than the whole budget
    /// is not kept.
    pub fn put(
        &self,
        generations: &Generations,
        key: K,
        read_at: u64,
        scopes: Vec<Scope>,
        cost: usize,
        value: V,
    ) {
        if !generations.enabled()
            || cost > self.budget
            || !generations.unchanged_since(read_at, &scopes)
        {
            return;
        }
        let mut entries = self.lock();
        if let Some(old) = entries.map.remove(&key) {
            entries.cost -= old.cost;
        }
        if entries.cost + cost > self.budget {
            entries.map.clear();
            entries.cost = 0;
        }
        entries.cost += cost;
        let entry = Entry {
            read_at,
            stored: Instant::now(),
            scopes,
            cost,
            value,
        };
        entries.map.insert(key, entry);
    }

    /// The valid entry for `key`, or else what `load` reads, kept when
    /// nothing it depends on changed while it was read. The one way to read
    /// through a cache: the generation is noted before the read.
    pub async fn get_or_load<E, Fut>(
        &self,
        generations: &Generations,
        key: K,
        load: impl FnOnce() -> Fut,
    ) -> Result<V, E>
    where
        Fut: Future<Output = Result<Loaded<V>, E>>,
    {
        if let Some(value) = self.get(generations, &key) {
            return Ok(value);
        }
        let read_at = generations.before_read();
        let loaded = load().await?;
        self.put(
            generations,
            key,
            read_at,
            loaded.scopes,
            loaded.cost,
            loaded.value.clone(),
        );
        Ok(loaded.value)
    }

    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The sum of the entries' costs.
    pub fn cost(&self) -> usize {
        self.lock().cost
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries<K, V>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What a read through a cache found: the value, the scopes whose change
/// makes it stale, and its cost against the shelf's budget.
pub struct Loaded<V> {
    pub value: V,
    pub scopes: Vec<Scope>,
    pub cost: usize,
}

/// The read caches of one application: one shelf per type, made by the
/// feature that reads through it (its `Default`) on first use. `AppState`
/// holds this and names no feature's cache.
#[derive(Default)]
pub struct Caches {
    shelves: RwLock<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
}

impl Caches {
    /// The cache of type `T`, made on first use.
    pub fn shelf<T: Any + Send + Sync + Default>(&self) -> Arc<T> {
        let id = TypeId::of::<T>();
        let found = self
            .shelves
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .cloned();
        let any = match found {
            Some(any) => any,
            None => self
                .shelves
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(id)
                .or_insert_with(|| Arc::new(T::default()))
                .clone(),
        };
        // Keyed by its own TypeId, so the downcast always succeeds.
        any.downcast::<T>()
            .unwrap_or_else(|_| Arc::new(T::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn circle(id: &str) -> Scope {
        Scope::Circle(id.into())
    }

    fn shelf() -> Shelf<&'static str, u32> {
        Shelf::new(4, Duration::from_secs(60))
    }

    #[test]
    fn a_change_after_the_read_drops_the_entry() {
        let generations = Generations::new(true);
        let shelf = shelf();
        let read_at = generations.before_read();
        shelf.put(&generations, "a", read_at, vec![circle("c1")], 1, 1);
        assert_eq!(shelf.get(&generations, "a"), Some(1));
        // Another circle's change leaves it alone.
        generations.invalidate(&[circle("c2")]);
        assert_eq!(shelf.get(&generations, "a"), Some(1));
        generations.invalidate(&[circle("c1")]);
        assert_eq!(shelf.get(&generations, "a"), None);
    }

    #[test]
    fn a_read_that_raced_a_commit_is_not_stored() {
        let generations = Generations::new(true);
        let shelf = shelf();
        // The reader notes the generation, a writer commits and bumps it,
        // then the reader's (possibly older) result arrives.
        let read_at = generations.before_read();
        generations.invalidate(&[circle("c1")]);
        shelf.put(&generations, "a", read_at, vec![circle("c1")], 1, 1);
        assert_eq!(shelf.get(&generations, "a"), None);
        assert!(shelf.is_empty());
        // A read noted after the commit is kept.
        let read_at = generations.before_read();
        shelf.put(&generations, "a", read_at, vec![circle("c1")], 1, 2);
        assert_eq!(shelf.get(&generations, "a"), Some(2));
    }

    #[test]
    fn disabled_caches_keep_nothing() {
        let generations = Generations::new(false);
        let shelf = shelf();
        shelf.put(
            &generations,
            "a",
            generations.before_read(),
            Vec::new(),
            1,
            1,
        );
        assert_eq!(shelf.get(&generations, "a"), None);
        assert!(shelf.is_empty());
    }

    #[test]
    fn entries_expire_and_the_shelf_stays_within_its_budget() {
        let generations = Generations::new(true);
        let put = |shelf: &Shelf<&'static str, u32>, key, cost, value| {
            shelf.put(
                &generations,
                key,
                generations.before_read(),
                Vec::new(),
                cost,
                value,
            );
        };
        let expired: Shelf<&str, u32> = Shelf::new(4, Duration::ZERO);
        put(&expired, "a", 1, 1);
        assert_eq!(expired.get(&generations, "a"), None);
        let shelf = shelf();
        for (i, key) in ["a", "b", "c", "d", "e"].into_iter().enumerate() {
            put(&shelf, key, 1, i as u32);
        }
        assert!(shelf.cost() <= 4);
        assert_eq!(shelf.get(&generations, "e"), Some(4));
        // Replacing an entry gives its cost back.
        for value in 5..15 {
            put(&shelf, "e", 2, value);
        }
        assert!(shelf.cost() <= 4);
        assert_eq!(shelf.get(&generations, "e"), Some(14));
        // Costlier than the whole budget: not kept, nothing else dropped.
        put(&shelf, "big", 5, 6);
        assert_eq!(shelf.get(&generations, "big"), None);
        assert_eq!(shelf.get(&generations, "e"), Some(14));
    }
}
