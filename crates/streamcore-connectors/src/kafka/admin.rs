//! Topic administration: [`create_topic`] (used by `streamcore kafka-bench` and the tests).

use super::config::{KafkaConfig, LogContext};
use super::kafka_error;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use std::time::Duration;

/// Creates `topic` with `partitions` partitions (replication factor 1) through the admin API.
pub fn create_topic(config: &KafkaConfig, topic: &str, partitions: i32) -> streamcore::Result<()> {
    let admin: AdminClient<LogContext> = config
        .client_config(&[])
        .create_with_context(LogContext)
        .map_err(|e| kafka_error("creating an admin client", e))?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let result = block_on(admin.create_topics([&new], &options))
        .map_err(|e| kafka_error("creating topics", e))?;
    for r in result {
        r.map_err(|(t, e)| kafka_error(&format!("creating topic `{t}`"), e))?;
    }
    Ok(())
}

/// Polls a future to completion on this thread (the admin API is async; streamcore runs no
/// async runtime).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        match f.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return v,
            Poll::Pending => std::thread::park_timeout(Duration::from_millis(10)),
        }
    }
}
