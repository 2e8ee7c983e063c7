//! Informers: a kind listed once, then watched from the list's revision
//! into an in-memory cache that controllers read instead of the server.
//! A watch the server ends is resumed from the last revision seen
//! (bookmarks included); a 410 Gone (the revision is compacted away)
//! makes it list again, and the difference between the old cache and the
//! new list is reported as changes, so no handler misses one.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{ListableResource, Metadata, Resource};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::api::{Api, ListParams};
use crate::watch::WatchEvent;

/// Called with the old and the new state of an object: `(None, Some)` for
/// an addition, `(Some, Some)` for an update, `(Some, None)` for a deletion.
pub type Handler<K> = Arc<dyn Fn(Option<&K>, Option<&K>) + Send + Sync>;

/// The cache key of an object: `namespace/name`, or `name` for
/// cluster-scoped objects.
pub fn key<K: Metadata<Ty = ObjectMeta>>(object: &K) -> String {
    let m = object.metadata();
    let name = m.name.as_deref().unwrap_or("");
    match m.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_string(),
    }
}

/// Splits a key into namespace (empty for cluster-scoped) and name.
pub fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

/// What an informer has seen, by key.
pub struct Store<K> {
    items: RwLock<HashMap<String, Arc<K>>>,
    synced: tokio::sync::watch::Sender<bool>,
    lists: std::sync::atomic::AtomicU64,
}

impl<K> Store<K> {
    fn new() -> Store<K> {
        Store {
            items: RwLock::new(HashMap::new()),
            synced: tokio::sync::watch::Sender::new(false),
            lists: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<K>>> {
        self.items.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<K>>> {
        self.items.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, key: &str) -> Option<Arc<K>> {
        self.read().get(key).cloned()
    }

    pub fn list(&self) -> Vec<Arc<K>> {
        self.read().values().cloned().collect()
    }

    /// The objects `keep` accepts.
    pub fn filter(&self, keep: impl Fn(&K) -> bool) -> Vec<Arc<K>> {
        self.read().values().filter(|k| keep(k)).cloned().collect()
    }

    pub fn keys(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// How many times the informer has listed (once, plus once per
    /// expired watch).
    pub fn lists(&self) -> u64 {
        self.lists.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn has_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Returns once the first list is in the cache.
    pub async fn wait_synced(&self) {
        let mut rx = self.synced.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }
}

/// List + watch of one kind into a [`Store`], calling handlers on changes.
pub struct Informer<K> {
    api: Api<K>,
    params: ListParams,
    store: Arc<Store<K>>,
    handlers: Vec<Handler<K>>,
}

impl<K> Informer<K>
where
    K: Resource + ListableResource + Metadata<Ty = ObjectMeta>,
    K: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// An informer of what `api` and `params` select.
    pub fn new(api: Api<K>, params: ListParams) -> Informer<K> {
        Informer {
            api,
            params,
            store: Arc::new(Store::new()),
            handlers: Vec::new(),
        }
    }

    pub fn store(&self) -> Arc<Store<K>> {
        self.store.clone()
    }

    /// Adds a handler, called on the informer's task after the cache
    /// changed (keep it short: enqueue a key).
    pub fn on_change(&mut self, handler: impl Fn(Option<&K>, Option<&K>) + Send + Sync + 'static) {
        self.handlers.push(Arc::new(handler));
    }

    /// Runs the informer on a task of its own until aborted.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run())
    }

    fn notify(&self, old: Option<&K>, new: Option<&K>) {
        for h in &self.handlers {
            h(old, new);
        }
    }

    /// Replaces the cache with a fresh list, reporting the differences.
    fn replace(&self, items: Vec<K>) {
        let mut fresh: HashMap<String, Arc<K>> = HashMap::with_capacity(items.len());
        for item in items {
            fresh.insert(key(&item), Arc::new(item));
        }
        let old = std::mem::replace(&mut *self.store.write(), fresh.clone());
        for (k, new) in &fresh {
            let before = old.get(k);
            let same = before
                .is_some_and(|b| b.metadata().resource_version == new.metadata().resource_version);
            if !same {
                self.notify(before.map(|b| &**b), Some(new));
            }
        }
        for (k, gone) in &old {
            if !fresh.contains_key(k) {
                self.notify(Some(gone), None);
            }
        }
        self.store.synced.send_replace(true);
    }

    fn apply(&self, event: WatchEvent<K>, revision: &mut String) {
        match event {
            WatchEvent::Added(k) | WatchEvent::Modified(k) => {
                if let Some(rv) = &k.metadata().resource_version {
                    revision.clone_from(rv);
                }
                let k = Arc::new(k);
                let old = self.store.write().insert(key(&*k), k.clone());
                self.notify(old.as_deref(), Some(&k));
            }
            WatchEvent::Deleted(k) => {
                if let Some(rv) = &k.metadata().resource_version {
                    revision.clone_from(rv);
                }
                let old = self.store.write().remove(&key(&k));
                self.notify(Some(old.as_deref().unwrap_or(&k)), None);
            }
            WatchEvent::Bookmark { resource_version } => *revision = resource_version,
        }
    }

    async fn run(self) {
        let kind = K::KIND;
        let mut revision = String::new();
        let mut failures = 0u32;
        loop {
            if failures > 0 {
                let pause = Duration::from_millis(100 << failures.min(5));
                tokio::time::sleep(pause).await;
            }
            if revision.is_empty() {
                match self.api.list(&self.params).await {
                    Ok(list) => {
                        self.store
                            .lists
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tracing::debug!(kind, items = list.items.len(), revision = %list.resource_version, "listed");
                        revision = list.resource_version;
                        self.replace(list.items);
                    }
                    Err(e) => {
                        tracing::warn!(kind, error = %e, "listing");
                        failures += 1;
                        continue;
                    }
                }
            }
            let mut params = self.params.clone();
            // Watches end now and then (five minutes unless asked
            // otherwise), so a stuck connection cannot hide changes forever.
            params.timeout_seconds.get_or_insert(300);
            let mut stream = match self.api.watch(&params, &revision).await {
                Ok(s) => s,
                Err(e) if e.is_gone() => {
                    revision.clear();
                    continue;
                }
                Err(e) => {
                    tracing::warn!(kind, error = %e, "watching");
                    failures += 1;
                    continue;
                }
            };
            failures = 0;
            while let Some(event) = stream.next().await {
                match event {
                    Ok(event) => self.apply(event, &mut revision),
                    Err(e) if e.is_gone() => {
                        tracing::debug!(kind, revision = %revision, "watch expired; listing again");
                        revision.clear();
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(kind, error = %e, "watch stream");
                        failures += 1;
                        break;
                    }
                }
            }
        }
    }
}
