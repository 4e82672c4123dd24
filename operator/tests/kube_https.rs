//! The operator's kube client speaks HTTPS: building it and sending a
//! request over TLS must reach the network instead of panicking for want of
//! a rustls crypto provider.

use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

#[tokio::test]
async fn a_kube_client_for_an_https_api_server_sends_its_request() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    // A server that reads the TLS ClientHello and hangs up: the client must
    // get as far as sending it.
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept");
        let mut hello = [0u8; 5];
        socket
            .read_exact(&mut hello)
            .await
            .expect("read the record header");
        hello
    });

    let mut config = kube::Config::new(format!("https://{address}").parse().expect("url"));
    config.accept_invalid_certs = true;
    config.connect_timeout = Some(Duration::from_secs(5));
    let client = kube::Client::try_from(config).expect("an HTTPS kube client");
    let outcome = tokio::time::timeout(Duration::from_secs(10), client.apiserver_version())
        .await
        .expect("the request ends");
    assert!(outcome.is_err(), "the fake server never answers HTTP");

    let header = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server saw a connection")
        .expect("server task");
    assert_eq!(header[0], 0x16, "the first record is a TLS handshake");
}
