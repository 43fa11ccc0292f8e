//! Helpers for the end-to-end tests in `tests/tests/*.rs`: they run real `gst-launch-1.0`
//! processes (edge and server apart, talking RTP over UDP), find the plugin, models and footage
//! through environment variables, and never wait without a deadline.
//!
//! Environment (as `scripts/test.sh` exports it): `GST_PLUGIN_PATH` (the directory holding
//! `libgstfmap.so`; default `<workspace>/target/release`), `FMAP_ROOT` (the workspace; default
//! this crate's parent), `FMAP_FOOTAGE` (directory with `vtest.avi`; default
//! `<workspace>/.cache/footage`).

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    match std::env::var_os("FMAP_ROOT") {
        Some(r) if !r.is_empty() => PathBuf::from(r),
        _ => Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("tests/ has a parent")
            .to_path_buf(),
    }
}

/// Directories searched for GStreamer plugins: `GST_PLUGIN_PATH` if set, otherwise
/// `<workspace>/target/release`.
pub fn plugin_path() -> String {
    match std::env::var("GST_PLUGIN_PATH") {
        Ok(p) if !p.is_empty() => p,
        _ => workspace_root()
            .join("target/release")
            .to_string_lossy()
            .into_owned(),
    }
}

/// The elements `pipelines/edge.sh` and `server.sh` use with either RTP payload format.
pub const EDGE_SERVER_ELEMENTS: [&str; 8] = [
    "splitinfer-front",
    "splitinfer-back",
    "fmapenc",
    "fmapdec",
    "rtpgstpay",
    "rtpgstdepay",
    "rtpfmappay",
    "rtpfmapdepay",
];

/// Asserts that the end-to-end runs have what they need: the named elements (`hint`: where
/// the non-fmap ones come from, if any), the sample footage and models/nanodet.onnx.
pub fn require_elements_and_footage(elements: &[&str], hint: &str) {
    let missing = missing_elements(elements);
    assert!(
        missing.is_empty(),
        "elements not found (build the plugin in release, set GST_PLUGIN_PATH{hint}): {missing:?}"
    );
    assert!(
        footage_video().is_file(),
        "footage missing: {}",
        footage_video().display()
    );
    assert!(
        model("nanodet.onnx").is_file(),
        "model missing: models/nanodet.onnx"
    );
}

/// Whether `gst-inspect-1.0` finds every named element with the plugin path in use.
/// Returns the missing ones.
pub fn missing_elements(names: &[&str]) -> Vec<String> {
    names
        .iter()
        .filter(|name| {
            !Command::new("gst-inspect-1.0")
                .arg(name)
                .env("GST_PLUGIN_PATH", plugin_path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        })
        .map(|s| s.to_string())
        .collect()
}

/// The sample video (`vtest.avi`, 768x576, 10 fps, 795 frames).
pub fn footage_video() -> PathBuf {
    let dir = match std::env::var_os("FMAP_FOOTAGE") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => workspace_root().join(".cache/footage"),
    };
    dir.join("vtest.avi")
}

/// A model file under `<workspace>/models`.
pub fn model(file: &str) -> PathBuf {
    workspace_root().join("models").join(file)
}

/// A fresh scratch directory for one test's logs and outputs.
pub fn scratch_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fmap-e2e-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// A UDP port that was free a moment ago, distinct for each call in this process.
pub fn free_udp_port() -> u16 {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind an ephemeral UDP port");
    sock.local_addr().expect("local addr").port()
}

/// A UDP relay on loopback between an edge and a server: it receives datagrams on its own port
/// ([`UdpTap::port`], where the edge sends), forwards each unchanged to `127.0.0.1:<target>`
/// (the server) and keeps a copy, so a test sees exactly what went over the wire.
pub struct UdpTap {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<Vec<u8>>>>,
}

impl UdpTap {
    /// Starts relaying to `127.0.0.1:<target>`.
    pub fn start(target: u16) -> UdpTap {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind the tap's UDP port");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("set a read timeout");
        let port = sock.local_addr().expect("local addr").port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut buf = vec![0u8; 65536];
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                match sock.recv_from(&mut buf) {
                    Ok((n, _)) => {
                        // A server that is not (or no longer) listening is the test's business.
                        let _ = sock.send_to(&buf[..n], ("127.0.0.1", target));
                        seen.push(buf[..n].to_vec());
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock
                                | std::io::ErrorKind::TimedOut
                                | std::io::ErrorKind::ConnectionRefused
                        ) => {}
                    Err(e) => panic!("UDP tap: {e}"),
                }
            }
            seen
        });
        UdpTap {
            port,
            stop,
            thread: Some(thread),
        }
    }

    /// Where the sender should send.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops relaying and returns every datagram relayed, in order.
    pub fn finish(mut self) -> Vec<Vec<u8>> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread
            .take()
            .expect("not finished yet")
            .join()
            .expect("the tap thread ended")
    }
}

impl Drop for UdpTap {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// One running `gst-launch-1.0 -e -m <pipeline>` process, stdout and stderr captured to files.
/// Dropping it kills the process.
pub struct Launch {
    pub name: String,
    pub pipeline: String,
    child: Option<Child>,
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
    started: Instant,
}

/// How a process ended.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Launch {
    /// Starts `pipeline` (shell syntax) in `dir` (logs go there), optionally inside network
    /// namespace `netns`.
    /// `-e` makes SIGINT send EOS, so an interrupted pipeline still finishes its files.
    pub fn spawn(name: &str, pipeline: &str, dir: &Path, netns: Option<&str>) -> Launch {
        let stdout_path = dir.join(format!("{name}.stdout"));
        let stderr_path = dir.join(format!("{name}.stderr"));
        // Through the shell, so `pipeline` is exactly what a user would type after
        // `gst-launch-1.0 -e -m` (quotes included); `exec` keeps the pid for SIGINT.
        let script = format!("exec gst-launch-1.0 -e -m {pipeline}");
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "sh", "-c", &script]);
                c
            }
            None => {
                let mut c = Command::new("sh");
                c.args(["-c", &script]);
                c
            }
        };
        cmd.current_dir(dir)
            .env("GST_PLUGIN_PATH", plugin_path())
            .env("FMAP_ROOT", workspace_root())
            .stdin(Stdio::null())
            .stdout(File::create(&stdout_path).expect("create stdout log"))
            .stderr(File::create(&stderr_path).expect("create stderr log"));
        eprintln!("[{name}] gst-launch-1.0 -e -m {pipeline}");
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start gst-launch-1.0 for {name}: {e}"));
        Launch {
            name: name.to_string(),
            pipeline: pipeline.to_string(),
            child: Some(child),
            stdout_path,
            stderr_path,
            started: Instant::now(),
        }
    }

    /// Runs one of the `pipelines/*.sh` scripts (bash), with extra environment, in `dir`,
    /// optionally inside network namespace `netns`. The scripts exec gst-launch-1.0, so
    /// [`Launch::interrupt`] reaches the pipeline.
    pub fn script(
        name: &str,
        script: &str,
        env: &[(&str, String)],
        dir: &Path,
        netns: Option<&str>,
    ) -> Launch {
        let path = workspace_root().join("pipelines").join(script);
        let stdout_path = dir.join(format!("{name}.stdout"));
        let stderr_path = dir.join(format!("{name}.stderr"));
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "bash"]).arg(&path);
                c
            }
            None => {
                let mut c = Command::new("bash");
                c.arg(&path);
                c
            }
        };
        cmd.current_dir(dir)
            .env("GST_PLUGIN_PATH", plugin_path())
            .env("FMAP_ROOT", workspace_root())
            .stdin(Stdio::null())
            .stdout(File::create(&stdout_path).expect("create stdout log"))
            .stderr(File::create(&stderr_path).expect("create stderr log"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let shown: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        eprintln!("[{name}] {} pipelines/{script}", shown.join(" "));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start pipelines/{script} for {name}: {e}"));
        Launch {
            name: name.to_string(),
            pipeline: format!("pipelines/{script}"),
            child: Some(child),
            stdout_path,
            stderr_path,
            started: Instant::now(),
        }
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Asks the pipeline to stop cleanly: SIGINT, which `-e` turns into EOS.
    pub fn interrupt(&mut self) {
        if let Some(c) = self.child.as_ref() {
            let _ = Command::new("kill")
                .args(["-INT", &c.id().to_string()])
                .status();
        }
    }

    /// Waits for the process to exit. Past `timeout` it is killed and the call returns an error
    /// that carries the tail of its logs: a test must fail, never hang.
    pub fn wait(&mut self, timeout: Duration) -> Result<Finished, String> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().ok_or("process already collected")?;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    self.child = None;
                    return Ok(Finished {
                        status,
                        stdout: read_lossy(&self.stdout_path),
                        stderr: read_lossy(&self.stderr_path),
                        elapsed: self.started.elapsed(),
                    });
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    self.child = None;
                    return Err(format!(
                        "{} did not finish within {timeout:?}\n{}",
                        self.name,
                        self.log_tail()
                    ));
                }
                Err(e) => return Err(format!("waiting for {}: {e}", self.name)),
            }
        }
    }

    /// Waits until the process's stdout contains `text` (e.g. gst-launch-1.0's "Setting pipeline
    /// to PLAYING"). Errors if the process exits first or `timeout` passes.
    pub fn wait_for_stdout(&mut self, text: &str, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if read_lossy(&self.stdout_path).contains(text) {
                return Ok(());
            }
            if !self.running() {
                return Err(format!(
                    "{} exited before printing {text:?}\n{}",
                    self.name,
                    self.log_tail()
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} did not print {text:?} within {timeout:?}\n{}",
                    self.name,
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last lines of both logs, for failure messages.
    pub fn log_tail(&self) -> String {
        format!(
            "--- {} stdout (tail)\n{}\n--- {} stderr (tail)\n{}",
            self.name,
            tail(&read_lossy(&self.stdout_path), 25),
            self.name,
            tail(&read_lossy(&self.stderr_path), 25)
        )
    }
}

impl Drop for Launch {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn read_lossy(path: &Path) -> String {
    let mut bytes = Vec::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The SSRC the scripts send SRTP (and FEC) with by default (pipelines/common.sh `SSRC`), "fmap"
/// in ASCII.
pub const SCRIPTS_SSRC: u32 = 1_718_444_400;

/// The SSRC of an RTP or SRTP packet (the header stays in the clear).
pub fn rtp_ssrc(datagram: &[u8]) -> Option<u32> {
    datagram
        .get(8..12)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// How many of the datagrams hold `needle` somewhere (plain text on a wire that should carry
/// none).
pub fn datagrams_holding(wire: &[Vec<u8>], needle: &[u8]) -> usize {
    wire.iter()
        .filter(|d| d.windows(needle.len()).any(|w| w == needle))
        .count()
}

/// Whether a server script's stderr holds its error for packets failing SRTP authentication
/// (pipelines/common.sh `srtp_failure_message`).
pub fn reports_wrong_srtp_key(stderr: &str) -> bool {
    stderr.contains("SRTP authentication failed for")
        && stderr.contains("the key does not match the sender's")
}

/// Number of complete lines in a file (0 if it does not exist yet).
pub fn count_lines(path: &Path) -> usize {
    read_lossy(path)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

/// Waits until `path` holds `want` lines, or until its line count has not grown for `idle`
/// (the sender is done and the rest was lost), or `timeout` passes. Returns the last count.
pub fn wait_for_lines(path: &Path, want: usize, idle: Duration, timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    let mut last = count_lines(path);
    let mut last_change = Instant::now();
    loop {
        let n = count_lines(path);
        if n >= want {
            return n;
        }
        if n != last {
            last = n;
            last_change = Instant::now();
        }
        if last_change.elapsed() >= idle || Instant::now() >= deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The fields of the last element message named `name` that `gst-launch-1.0 -m` printed, e.g.
/// `fmapenc-stats, frames=(guint64)60, bytes=(guint64)123;` -> {"frames": 60, "bytes": 123}.
/// Only unsigned integer fields are kept.
pub fn element_message_fields(stdout: &str, name: &str) -> Option<HashMap<String, u64>> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.contains(&format!("): {name},")) || l.contains(&format!("): {name};")))?;
    let body = line.split_once(&format!("{name},"))?.1;
    let mut fields = HashMap::new();
    for part in body.trim_end_matches(';').split(',') {
        let Some((key, value)) = part.trim().split_once('=') else {
            continue;
        };
        let value = value
            .trim()
            .trim_end_matches(';')
            .rsplit(')')
            .next()
            .unwrap_or("");
        if let Ok(v) = value.parse::<u64>() {
            fields.insert(key.trim().to_string(), v);
        }
    }
    Some(fields)
}

/// Two network namespaces joined by a veth pair, `10.<n>.0.1` (edge) and `10.<n>.0.2` (server):
/// traffic between them crosses a real (virtual) link, not loopback. Removed on drop.
pub struct NetnsPair {
    pub edge_ns: String,
    pub server_ns: String,
    pub edge_ip: String,
    pub server_ip: String,
    /// The veth end in `edge_ns`.
    pub edge_dev: String,
    /// The veth end in `server_ns`.
    pub server_dev: String,
}

impl NetnsPair {
    /// Sets the pair up; `Err` says why it cannot (not root, no `ip netns`), so the caller can
    /// skip with that reason.
    pub fn create(tag: &str) -> Result<NetnsPair, String> {
        if !is_root() {
            return Err("not running as root (network namespaces need CAP_NET_ADMIN)".into());
        }
        let n = (std::process::id() % 200) + 20;
        let veth_edge = format!("fe{n}{}", &tag[..tag.len().min(4)]);
        let veth_server = format!("fs{n}{}", &tag[..tag.len().min(4)]);
        let pair = NetnsPair {
            edge_ns: format!("fmap-{tag}-edge-{n}"),
            server_ns: format!("fmap-{tag}-srv-{n}"),
            edge_ip: format!("10.{n}.0.1"),
            server_ip: format!("10.{n}.0.2"),
            edge_dev: veth_edge.clone(),
            server_dev: veth_server.clone(),
        };
        let steps: Vec<Vec<String>> = vec![
            vec!["netns".into(), "add".into(), pair.edge_ns.clone()],
            vec!["netns".into(), "add".into(), pair.server_ns.clone()],
            vec![
                "link".into(),
                "add".into(),
                veth_edge.clone(),
                "type".into(),
                "veth".into(),
                "peer".into(),
                "name".into(),
                veth_server.clone(),
            ],
            vec![
                "link".into(),
                "set".into(),
                veth_edge.clone(),
                "netns".into(),
                pair.edge_ns.clone(),
            ],
            vec![
                "link".into(),
                "set".into(),
                veth_server.clone(),
                "netns".into(),
                pair.server_ns.clone(),
            ],
        ];
        for args in steps {
            ip(&args).inspect_err(|_| pair.remove())?;
        }
        for (ns, dev, addr) in [
            (&pair.edge_ns, &veth_edge, &pair.edge_ip),
            (&pair.server_ns, &veth_server, &pair.server_ip),
        ] {
            for args in [
                vec!["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev],
                vec!["-n", ns, "link", "set", dev, "up"],
                vec!["-n", ns, "link", "set", "lo", "up"],
            ] {
                let args: Vec<String> = args.into_iter().map(String::from).collect();
                ip(&args).inspect_err(|_| pair.remove())?;
            }
        }
        Ok(pair)
    }

    /// Cuts the link in both directions: every packet either end sends on the veth pair is
    /// dropped, silently (the sender's `sendto` succeeds, as on a radio link that fades), by a
    /// `blackhole` root qdisc on both ends:
    /// `tc -n <ns> qdisc add dev <veth> root blackhole`. It has the effect of
    /// `netem loss 100%` and needs no module: it is built with every `CONFIG_NET_SCHED` kernel,
    /// where netem often is not (`CONFIG_NET_SCH_NETEM`). ARP is dropped too, as on a dead link.
    pub fn cut_link(&self) -> Result<(), String> {
        for (ns, dev) in [
            (&self.edge_ns, &self.edge_dev),
            (&self.server_ns, &self.server_dev),
        ] {
            tc(&["-n", ns, "qdisc", "add", "dev", dev, "root", "blackhole"])?;
        }
        Ok(())
    }

    /// Undoes [`NetnsPair::cut_link`]: back to the veth's default (no qdisc).
    pub fn restore_link(&self) -> Result<(), String> {
        let mut result = Ok(());
        for (ns, dev) in [
            (&self.edge_ns, &self.edge_dev),
            (&self.server_ns, &self.server_dev),
        ] {
            // Both ends, even if one fails.
            result = result.and(tc(&["-n", ns, "qdisc", "del", "dev", dev, "root"]));
        }
        result
    }

    fn remove(&self) {
        for ns in [&self.edge_ns, &self.server_ns] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        // Deleting a namespace destroys the veth end inside it, and with it the peer.
        self.remove();
    }
}

fn ip(args: &[String]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn tc(args: &[&str]) -> Result<(), String> {
    let out = Command::new("tc")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run tc: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "tc {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_element_messages() {
        let out = "Got message #12 from element \"enc\" (element): fmapenc-stats, frames=(guint64)60, units=(guint64)60, bytes=(guint64)123456;\nother";
        let f = element_message_fields(out, "fmapenc-stats").unwrap();
        assert_eq!(f["frames"], 60);
        assert_eq!(f["bytes"], 123456);
        assert!(element_message_fields(out, "fmapdec-stats").is_none());
    }

    #[test]
    fn a_process_past_its_deadline_fails() {
        let dir = scratch_dir("deadline");
        let mut p = Launch::spawn(
            "sleeper",
            "videotestsrc is-live=true ! fakesink",
            &dir,
            None,
        );
        let err = p.wait(Duration::from_millis(500)).unwrap_err();
        assert!(err.contains("did not finish"), "{err}");
    }

    #[test]
    fn interrupt_ends_a_live_pipeline_with_eos() {
        let dir = scratch_dir("interrupt");
        let mut p = Launch::spawn("live", "videotestsrc is-live=true ! fakesink", &dir, None);
        std::thread::sleep(Duration::from_millis(500));
        p.interrupt();
        let done = p.wait(Duration::from_secs(10)).expect("exits after SIGINT");
        assert!(done.status.success(), "{}", done.stderr);
    }
}
