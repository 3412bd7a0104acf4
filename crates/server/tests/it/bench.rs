//! `jinliu bench`, run small: it measures every run it promises and keeps its files to itself.

/// The benchmark starts a server of its own; that server's data directory (audit checkpoints
/// signed with the benchmark's throwaway key) must not be the current directory's `data/`,
/// which may be a real deployment's.
#[test]
fn a_small_benchmark_reports_every_run_and_writes_nothing_into_the_current_directory() {
    let cwd = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_jinliu"))
        .args([
            "bench",
            "--duration",
            "1",
            "--connections",
            "2",
            "--orders",
            "400",
            "--notifications",
            "200",
        ])
        .current_dir(cwd.path())
        .env("RUST_LOG", "warn")
        // An operator's setting, which wins over a data directory.
        .env("JINLIU_AUDIT_CHECKPOINTS", cwd.path().join("real-checkpoints.jsonl"))
        .output()
        .unwrap_or_else(|e| panic!("run jinliu bench: {e}"));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for run in [
        "raw payment+event inserts",
        // Closed-loop runs come in rounds (three by default), then one line of their medians.
        "| create payment, closed, 2 conns, round 1/3 |",
        "| create payment, closed, 2 conns, round 3/3 |",
        "create payment, closed, 2 conns, 3 rounds: median",
        "| create payment, open,",
        "| octopus notification, closed, 2 conns |",
    ] {
        assert!(stdout.contains(run), "{run:?} missing from:\n{stdout}");
    }
    let left: Vec<_> = std::fs::read_dir(cwd.path())
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    assert!(left.is_empty(), "the benchmark left {left:?} in the current directory");
}
