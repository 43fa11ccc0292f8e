//! The main job's choice of link (`scripts/run.sh --path …`, which hands its arguments to
//! `fmap-demo`): a short run of the edge and server processes over RTP/UDP on vtest.avi with
//! the features as mosaic pictures in H.265 (8-bit and 10-bit), a detection line for every frame
//! sent. Needs the release plugin on GST_PLUGIN_PATH, ONNX Runtime and the sample footage
//! (scripts/test.sh provides all three).

mod common;

use std::process::Command;

use common::workspace;

const FRAMES: u64 = 20;

fn demo() -> Command {
    let root = workspace();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fmap-demo"));
    cmd.env("FMAP_ROOT", &root);
    if std::env::var_os("GST_PLUGIN_PATH").is_none() {
        cmd.env("GST_PLUGIN_PATH", root.join("target/release"));
    }
    cmd
}

/// A UDP port that was free a moment ago.
fn free_port() -> u16 {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind an ephemeral UDP port");
    sock.local_addr().expect("local addr").port()
}

#[test]
fn main_job_runs_the_tiled_paths() {
    for (path, format) in [("tiled", "I420 "), ("tiled-10bit", "I420_10LE ")] {
        let out = std::env::temp_dir().join(format!("fmap-demo-{path}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        let done = demo()
            .args([
                "--path",
                path,
                "--frames",
                &FRAMES.to_string(),
                "--no-render",
            ])
            .args(["--port", &free_port().to_string()])
            .arg("--out")
            .arg(&out)
            .output()
            .expect("fmap-demo runs");
        let stdout = String::from_utf8_lossy(&done.stdout);
        assert!(
            done.status.success(),
            "{path}: {}\n{stdout}\n{}",
            done.status,
            String::from_utf8_lossy(&done.stderr)
        );
        // The printed pipelines are the tiled ones, and the summary says so.
        for needle in [
            &format!("fmaptile ! video/x-raw,format={format}") as &str,
            "x265enc name=enc",
            "rtph265depay ! h265parse ! avdec_h265 ! fmapuntile",
            &format!("{path} path"),
            &format!("frames sent            {FRAMES}"),
        ] {
            assert!(stdout.contains(needle), "{path}: '{needle}' in\n{stdout}");
        }
        let lines = std::fs::read_to_string(out.join("detections.jsonl")).unwrap();
        assert_eq!(
            lines.lines().count() as u64,
            FRAMES,
            "{path}: a line per frame"
        );
        let _ = std::fs::remove_dir_all(&out);
    }
}

#[test]
fn an_unknown_path_is_refused_with_the_choices() {
    let done = demo().args(["--path", "tiles"]).output().unwrap();
    assert_eq!(done.status.code(), Some(2));
    let err = String::from_utf8_lossy(&done.stderr);
    assert!(
        err.contains("unknown --path 'tiles'") && err.contains("fmapenc|tiled|tiled-10bit"),
        "{err}"
    );
}
