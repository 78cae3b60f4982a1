//! A map for a few entries to a few hundred: a vector searched in order.
//!
//! Each key and value type of a `HashMap` brings its own copy of
//! hashbrown's table code (insertion, rehashing, removal: about a
//! kilobyte of wasm apiece); this map's code is a vector's. The maps that
//! use it are bounded (a peer's connections, at most
//! [`crate::upgrade::MAX_PEERS`] peers, the dial hints of
//! `MAX_ADDRESS_HINTS`), so a linear search costs nothing that shows.
//! Iteration order is insertion order, perturbed by removals: callers
//! must not rely on it, as they could not on a `HashMap`'s.

/// A map of `K` to `V`, keys compared with `==`.
#[derive(Debug, Clone)]
pub struct SmallMap<K, V> {
    entries: Vec<(K, V)>,
}

impl<K, V> Default for SmallMap<K, V> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
        }
    }
}

impl<K: PartialEq, V> SmallMap<K, V> {
    pub const fn new() -> Self {
        Self {
            entries: Vec::new(),
        }
    }

    fn position(&self, key: &K) -> Option<usize> {
        self.entries.iter().position(|(k, _)| k == key)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn contains_key(&self, key: &K) -> bool {
        self.position(key).is_some()
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        self.position(key).map(|at| &self.entries[at].1)
    }

    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.position(key).map(|at| &mut self.entries[at].1)
    }

    /// Sets `key`'s value; returns the one it replaced.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.position(&key) {
            Some(at) => Some(std::mem::replace(&mut self.entries[at].1, value)),
            None => {
                self.entries.push((key, value));
                None
            }
        }
    }

    /// `key`'s value, inserted as `V::default()` first if missing.
    pub fn get_or_insert_default(&mut self, key: K) -> &mut V
    where
        V: Default,
    {
        let at = match self.position(&key) {
            Some(at) => at,
            None => {
                self.entries.push((key, V::default()));
                self.entries.len() - 1
            }
        };
        &mut self.entries[at].1
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        self.position(key).map(|at| self.entries.swap_remove(at).1)
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.entries.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().map(|(_, v)| v)
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.entries.iter_mut().map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::SmallMap;

    #[test]
    fn behaves_as_a_map() {
        let mut map = SmallMap::new();
        assert!(map.is_empty());
        assert_eq!(map.insert(1, "a"), None);
        assert_eq!(map.insert(2, "b"), None);
        assert_eq!(map.insert(1, "c"), Some("a"), "a second insert replaces");
        assert_eq!(map.len(), 2);
        assert_eq!(map.get(&1), Some(&"c"));
        assert!(map.contains_key(&2) && !map.contains_key(&3));
        *map.get_or_insert_default(3) = "d";
        assert_eq!(map.get(&3), Some(&"d"));
        *map.get_or_insert_default(3) = "e";
        assert_eq!(map.len(), 3, "an existing key is not added again");
        assert_eq!(map.remove(&1), Some("c"));
        assert_eq!(map.remove(&1), None);
        let mut keys: Vec<_> = map.keys().copied().collect();
        keys.sort_unstable();
        assert_eq!(keys, [2, 3]);
        for value in map.values_mut() {
            *value = "z";
        }
        assert!(map.values().all(|v| *v == "z"));
        map.clear();
        assert!(map.is_empty() && map.get(&2).is_none());
    }
}
