//! `jinliu bench` (being written).
#[derive(clap::Args, Debug)]
pub struct BenchArgs {}
/// Runs it.
pub async fn run(_a: BenchArgs) -> Result<(), String> {
    Ok(())
}
