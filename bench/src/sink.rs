//! A null remote_write receiver: HTTP/1.1 with keep-alive, reads each request's body and
//! answers 204 without looking at it. Sending the workload here measures the generator's
//! ceiling, the rate no real receiver on this machine can be credited beyond.

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Serves until the process is killed.
pub async fn serve(listener: TcpListener) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            // A broken connection only ends that connection.
            let _ = connection(stream).await;
        });
    }
}

async fn connection(stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = BufReader::with_capacity(256 * 1024, stream);
    let mut line = String::new();
    let mut body = Vec::new();
    loop {
        let mut content_length = 0usize;
        let mut first = true;
        loop {
            line.clear();
            if reader.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            if line == "\r\n" || line == "\n" {
                if first {
                    continue;
                }
                break;
            }
            first = false;
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                content_length = value.trim().parse().unwrap_or(0);
            }
        }
        body.resize(content_length, 0);
        reader.read_exact(&mut body).await?;
        reader.get_mut().write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await?;
    }
}
