//! An example server run as its own process, as an operator runs it.

use std::io::{BufRead, BufReader, ErrorKind};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port free now (the kernel's pick, released for the server to bind).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An example server, started and waited for until it says it serves.
pub struct Server {
    child: Child,
    port: u16,
    stdout: BufReader<std::process::ChildStdout>,
    said: Vec<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        // A test that failed before `terminate`: the server must not
        // outlive it (nor keep the test's output pipe open).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub fn start(example: &str, args: &[&str], port: u16) -> Server {
        let mut command = Command::new(super::example_binary(example));
        command.args(args);
        Server::spawn(command, port)
    }

    /// Runs `command` and waits until a line it prints names `port`.
    pub fn spawn(mut command: Command, port: u16) -> Server {
        let mut child = command
            .stdout(Stdio::piped())
            .spawn()
            .expect("the example starts");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        // The line that names the port says it serves; a few may come
        // before it (tls_hello names its certificate).
        let mut said = Vec::new();
        loop {
            let mut line = String::new();
            stdout.read_line(&mut line).unwrap();
            assert!(
                !line.is_empty() && said.len() < 8,
                "{command:?} said {said:?}"
            );
            let serves = line.contains(&port.to_string());
            said.push(line);
            if serves {
                break;
            }
        }
        Server {
            child,
            port,
            stdout,
            said,
        }
    }

    /// What the server printed up to the line that says it serves.
    pub fn said(&self) -> &[String] {
        &self.said
    }

    pub fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream
    }

    /// Sends SIGTERM and waits for the exit: the time it took, and the
    /// lines printed after the first.
    pub fn terminate(mut self, deadline: Duration) -> (Duration, Vec<String>) {
        let sent = Instant::now();
        // SAFETY: kill takes no pointers; the pid is our child's.
        assert_eq!(
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) },
            0
        );
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if sent.elapsed() > deadline + Duration::from_secs(10) {
                let _ = self.child.kill();
                panic!("still running {:?} after SIGTERM", sent.elapsed());
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let took = sent.elapsed();
        assert!(status.success(), "exit status after SIGTERM: {status}");
        let lines: Vec<String> = (&mut self.stdout).lines().map(Result::unwrap).collect();
        let refused = TcpStream::connect(("127.0.0.1", self.port));
        assert_eq!(
            refused.map(drop).unwrap_err().kind(),
            ErrorKind::ConnectionRefused,
            "the port refuses after the exit"
        );
        (took, lines)
    }
}
