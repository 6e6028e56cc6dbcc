//! A live OTLP/gRPC collector for `bench/run` with `OTLP=1`: counts the spans Warrant exports
//! and writes the count to a file every 100 ms.
//!
//!     cargo run --release --example otlp-collector -- 127.0.0.1:4317 spans.count

#[path = "counting_collector.rs"]
mod counting_collector;

use counting_collector::CountingCollector;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [address, count_file] = args.as_slice() else {
        return Err("usage: otlp-collector ADDRESS COUNT_FILE".into());
    };
    let collector = CountingCollector::default();
    collector.serve(tokio::net::TcpListener::bind(address).await?);
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        std::fs::write(count_file, collector.spans().to_string())?;
    }
}
