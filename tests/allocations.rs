//! Allocations per safe-mode decode, counted by dhat's allocator (a count, not a timing).

#[path = "../benches/core.rs"]
#[allow(dead_code)]
mod core_bench;

use wechat_push::crypto::{EncodingAesKey, KeyRing};
use wechat_push::Format;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

#[test]
fn safe_mode_decode_allocates_at_most_10_times() {
    let keys = KeyRing::new(
        EncodingAesKey::new("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C").unwrap(),
        "wx1234567890abcdef",
    );
    let pushes = [
        core_bench::push(Format::Xml),
        core_bench::push(Format::Json),
    ];
    let _profiler = dhat::Profiler::builder().testing().build();
    for push in &pushes {
        let before = dhat::HeapStats::get().total_blocks;
        let message = core_bench::open(&keys, push);
        let count = dhat::HeapStats::get().total_blocks - before;
        drop(message);
        println!("{count} allocations");
        assert!(count <= 10, "{count} allocations for one safe-mode decode");
        assert!(count >= 1, "the allocator must be counting");
    }
}
