//! Real `redis-server` processes that the tests start, stop and restart themselves.
//!
//! Every process is watched by a small shell loop that kills it (and removes its directory)
//! once the test binary is gone, so a panicking or aborted run leaves no stray `redis-server`.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One `redis-server` on `127.0.0.1:port`, in a temporary directory of its own.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a free port, with `extra` arguments, and waits until it answers.
    pub fn start(extra: &[&str]) -> Self {
        Self::start_on(free_ports(1)[0], extra)
    }

    /// Starts a server on `port`, with `extra` arguments, and waits until it answers.
    pub fn start_on(port: u16, extra: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "crudauth-redis-{}-{port}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let mut server = Self {
            port,
            dir,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            child: None,
        };
        server.launch();
        server
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it with SIGKILL (no goodbye to clients) and waits until it is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same arguments (and no data).
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// Freezes it (SIGSTOP): connections stay open, nothing is answered.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws it (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let status = Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status()
                .unwrap_or_else(|e| panic!("cannot run kill {signal}: {e}"));
            assert!(status.success(), "kill {signal} failed");
        }
    }

    fn launch(&mut self) {
        let port = self.port.to_string();
        let log = self.dir.join("redis.log");
        let mut args: Vec<String> = [
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        args.extend(["--dir".to_owned(), self.dir.display().to_string()]);
        args.extend(["--logfile".to_owned(), log.display().to_string()]);
        args.extend(self.extra.iter().cloned());
        let child = Command::new("redis-server")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server (is it installed and on PATH?): {e}")
            });
        watch(child.id(), &self.dir);
        self.child = Some(child);
        self.wait_until_answering();
    }

    fn wait_until_answering(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pong = Command::new("redis-cli")
                .args(["-p", &self.port.to_string()])
                .args(self.auth_args())
                .arg("ping")
                .stderr(Stdio::null())
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains("PONG"))
                .unwrap_or(false);
            if pong {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not answer within 10 s; see {}",
                self.port,
                self.dir.join("redis.log").display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn auth_args(&self) -> Vec<String> {
        let pass = self
            .extra
            .iter()
            .position(|a| a == "--requirepass")
            .and_then(|i| self.extra.get(i + 1));
        match pass {
            Some(pass) => vec![
                "-a".to_owned(),
                pass.clone(),
                "--no-auth-warning".to_owned(),
            ],
            None => Vec::new(),
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Spawns a watchdog that kills `pid` and removes `dir` once this test binary has exited.
/// It also ends by itself when `pid` is gone first.
pub fn watch(pid: u32, dir: &Path) {
    let parent = std::process::id();
    let script = format!(
        "while kill -0 {parent} 2>/dev/null && kill -0 {pid} 2>/dev/null; do sleep 0.2; done; \
         if ! kill -0 {parent} 2>/dev/null; then kill -9 {pid} 2>/dev/null; rm -rf '{}'; fi",
        dir.display()
    );
    let mut watchdog = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start a watchdog: {e}"));
    // Reap it when it ends, so no zombie lingers while the tests go on.
    std::thread::spawn(move || watchdog.wait());
}

/// `count` distinct free ports whose cluster bus port (+10 000) is free too.
pub fn free_ports(count: usize) -> Vec<u16> {
    let mut held = Vec::new();
    let mut ports = Vec::new();
    while ports.len() < count {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        let port = listener.local_addr().expect("local address").port();
        if port < 55_000 {
            if let Ok(bus) = TcpListener::bind(("127.0.0.1", port + 10_000)) {
                ports.push(port);
                held.push(bus);
            }
        }
        held.push(listener);
    }
    ports
}

/// A three-primary Redis Cluster on free ports, no replicas.
#[derive(Debug)]
pub struct Cluster {
    nodes: Vec<RedisServer>,
}

impl Cluster {
    /// Starts three cluster-enabled servers, joins them with `redis-cli --cluster create`, and
    /// waits until every node reports `cluster_state:ok`.
    pub fn start() -> Self {
        let nodes: Vec<RedisServer> = free_ports(3)
            .into_iter()
            .map(|port| {
                let config = format!("nodes-{port}.conf");
                RedisServer::start_on(
                    port,
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        &config,
                        "--cluster-node-timeout",
                        "5000",
                    ],
                )
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run redis-cli --cluster create: {e}"));
        assert!(
            created.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&created.stdout),
            String::from_utf8_lossy(&created.stderr)
        );
        let cluster = Self { nodes };
        cluster.wait_until_ok();
        cluster
    }

    /// The nodes' `host:port` addresses.
    pub fn addresses(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect()
    }

    fn wait_until_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for node in &self.nodes {
            loop {
                let info = Command::new("redis-cli")
                    .args(["-p", &node.port().to_string(), "cluster", "info"])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default();
                if info.contains("cluster_state:ok") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the test cluster did not reach cluster_state:ok within 30 s (node {}: {info})",
                    node.port()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// The one cluster every test of this binary shares, started on first use.
pub fn shared_cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(Cluster::start)
}

/// `redis-cli MONITOR` on a server: what clients sent, command by command (commands that
/// scripts run inside themselves are left out).
#[derive(Debug)]
pub struct Monitor {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Monitor {
    /// Starts watching the server on `port` and waits until MONITOR is on.
    pub fn start(port: u16) -> Self {
        let mut child = Command::new("redis-cli")
            .args(["-p", &port.to_string(), "monitor"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run redis-cli monitor: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (ready, on) = std::sync::mpsc::channel();
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line == "OK" {
                    let _ = ready.send(());
                } else {
                    sink.lock().expect("monitor lines").push(line);
                }
            }
        });
        on.recv_timeout(Duration::from_secs(10))
            .expect("MONITOR did not start within 10 s");
        Self {
            child,
            lines,
            reader: Some(reader),
        }
    }

    /// Stops watching and returns the commands clients sent (`"NAME" "arg" …`), in order.
    pub fn stop(mut self) -> Vec<String> {
        std::thread::sleep(Duration::from_millis(200));
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        let lines = self.lines.lock().expect("monitor lines");
        lines
            .iter()
            .filter(|line| !line.contains(" lua] "))
            .filter_map(|line| line.split_once("] ").map(|(_, command)| command.to_owned()))
            .collect()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
