//! The `customer_service` example served inside a test process, configured from a map as its
//! `main` reads the environment. `#[path]`-included by the Redis test files that also include
//! the example as `mod example`.

use std::collections::HashMap;
use std::net::SocketAddr;

/// The example's server, configured from `env` as `main` reads the environment.
pub(crate) struct Instance {
    pub(crate) addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Instance {
    pub(crate) async fn start(env: &HashMap<&str, String>) -> Instance {
        let config = crate::example::configure(|name| env.get(name).cloned()).unwrap();
        let listener = tokio::net::TcpListener::bind(config.bind).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(crate::example::serve(listener, config, async move {
            let _ = stopped.await;
        }));
        Instance { addr, stop, task }
    }

    /// Stops it as SIGTERM does, pending sends included.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}
