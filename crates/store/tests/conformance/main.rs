//! The conformance suite (`suite.rs`) run against every backend: each test
//! of the suite becomes one test per backend, named `<backend>::<test>`.

mod suite;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use cais_store::sqlite::{Options, SqliteStore};
use cais_store::Store;

/// The embedded backend in a temporary directory of its own.
struct Sqlite {
    dir: tempfile::TempDir,
}

impl Sqlite {
    fn new() -> Self {
        Sqlite {
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("store")
    }
}

#[async_trait]
impl suite::Backend for Sqlite {
    async fn open(&self) -> Arc<dyn Store> {
        Arc::new(SqliteStore::open(&self.path(), Options::default()).expect("open the store"))
    }
}

/// One `#[tokio::test]` per suite function, in a module per backend.
macro_rules! conformance {
    ($backend:ident, $fixture:expr, [$($test:ident),* $(,)?]) => {
        mod $backend {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let fixture = $fixture;
                    suite::$test(&fixture).await;
                }
            )*
        }
    };
}

conformance!(
    sqlite,
    Sqlite::new(),
    [
        create_then_get,
        create_existing_key_fails,
        get_missing_key_is_none,
        update_at_the_current_revision,
        update_at_a_stale_revision_conflicts,
        update_of_a_missing_key_is_not_found,
        delete_returns_the_deleted_value,
        delete_at_a_stale_revision_conflicts,
        delete_of_a_missing_key_is_not_found,
        create_after_delete_starts_a_new_life,
        failed_writes_take_no_revision,
        keys_and_values_are_bytes,
        invalid_requests_are_refused,
        list_returns_a_prefix_in_key_order,
        list_range_includes_start_and_excludes_end,
        list_pages_stay_at_the_first_page_revision,
        list_limit_exactly_the_number_of_keys_has_no_more,
        reads_at_an_old_revision_see_the_old_state,
        reads_ahead_of_the_store_fail,
        count_counts_the_live_keys_of_a_range,
        compaction_makes_older_revisions_too_old,
        compaction_keeps_the_state_at_and_after_it,
        watch_from_now_sees_only_later_changes,
        watch_from_a_past_revision_replays_history,
        watch_events_carry_previous_values,
        watch_sees_only_its_range,
        watch_is_ordered_unique_and_gapless_under_concurrent_writes,
        watch_resumes_from_any_retained_revision,
        watch_from_a_compacted_revision_fails,
        many_watchers_see_the_same_changes,
        slow_watcher_catches_up_from_history,
        slow_watcher_behind_compaction_is_told_to_list_again,
        progress_request_reports_how_far_the_watch_has_seen,
        leases_expire_keys,
        closing_the_store_ends_its_watches,
        restart_keeps_every_acknowledged_write,
    ]
);
