//! rumqttc clients (3.1.1 and 5.0): a second, independent MQTT implementation for interoperability
//! tests, with the event loop in a task and received messages behind a channel.

use std::time::Duration;

use tokio::time::timeout;

use super::timing::WAIT;

/// A rumqttc 3.1.1 client whose event loop runs in a task; received PUBLISH packets come through a
/// channel. The loop stops on the first connection error (no reconnects).
pub struct RumqttV4 {
    pub client: rumqttc::AsyncClient,
    rx: tokio::sync::mpsc::UnboundedReceiver<rumqttc::Publish>,
    acks: tokio::sync::mpsc::UnboundedReceiver<rumqttc::Packet>,
    task: tokio::task::JoinHandle<()>,
    pub session_present: bool,
}

impl RumqttV4 {
    pub async fn connect(port: u16, id: &str, clean: bool) -> RumqttV4 {
        let mut o = rumqttc::MqttOptions::new(id, "127.0.0.1", port);
        o.set_clean_session(clean).set_keep_alive(Duration::from_secs(30));
        let (client, mut el) = rumqttc::AsyncClient::new(o, 100);
        let first = timeout(WAIT, el.poll()).await.expect("rumqttc v4 connect timed out").expect("rumqttc v4 connect failed");
        let session_present = match first {
            rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(c)) => c.session_present,
            other => panic!("expected CONNACK, got {other:?}"),
        };
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (atx, acks) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                        let _ = tx.send(p);
                    }
                    Ok(rumqttc::Event::Incoming(p)) => {
                        let _ = atx.send(p);
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        });
        RumqttV4 { client, rx, acks, task, session_present }
    }

    /// Subscribes and waits for the SUBACK.
    pub async fn subscribe(&mut self, filter: &str, qos: rumqttc::QoS) {
        self.client.subscribe(filter, qos).await.expect("subscribe request");
        self.wait_ack("SUBACK", |p| matches!(p, rumqttc::Packet::SubAck(_))).await;
    }

    /// Publishes and, for QoS 1/2, waits for the PUBACK/PUBCOMP.
    pub async fn publish(&mut self, topic: &str, qos: rumqttc::QoS, payload: &[u8]) {
        self.client.publish(topic, qos, false, payload.to_vec()).await.expect("publish request");
        match qos {
            rumqttc::QoS::AtMostOnce => {}
            rumqttc::QoS::AtLeastOnce => self.wait_ack("PUBACK", |p| matches!(p, rumqttc::Packet::PubAck(_))).await,
            rumqttc::QoS::ExactlyOnce => self.wait_ack("PUBCOMP", |p| matches!(p, rumqttc::Packet::PubComp(_))).await,
        }
    }

    async fn wait_ack(&mut self, what: &str, want: impl Fn(&rumqttc::Packet) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.acks.recv()).await {
                Ok(Some(p)) if want(&p) => return,
                Ok(Some(_)) => {}
                Ok(None) => panic!("rumqttc v4 connection ended while waiting for {what}"),
                Err(_) => panic!("no {what} within {WAIT:?}"),
            }
        }
    }

    /// Next received PUBLISH within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<rumqttc::Publish> {
        timeout(wait, self.rx.recv()).await.ok().flatten()
    }

    pub async fn disconnect(self) {
        let _ = self.client.disconnect().await;
        let _ = timeout(Duration::from_secs(2), self.task).await;
    }
}

/// A rumqttc 5.0 client, like `RumqttV4`.
pub struct RumqttV5 {
    pub client: rumqttc::v5::AsyncClient,
    rx: tokio::sync::mpsc::UnboundedReceiver<rumqttc::v5::mqttbytes::v5::Publish>,
    acks: tokio::sync::mpsc::UnboundedReceiver<rumqttc::v5::mqttbytes::v5::Packet>,
    task: tokio::task::JoinHandle<()>,
}

impl RumqttV5 {
    pub async fn connect(port: u16, id: &str) -> RumqttV5 {
        use rumqttc::v5::mqttbytes::v5::Packet;
        let mut o = rumqttc::v5::MqttOptions::new(id, "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(30));
        let (client, mut el) = rumqttc::v5::AsyncClient::new(o, 100);
        let first = timeout(WAIT, el.poll()).await.expect("rumqttc v5 connect timed out").expect("rumqttc v5 connect failed");
        assert!(matches!(first, rumqttc::v5::Event::Incoming(Packet::ConnAck(_))), "expected CONNACK, got {first:?}");
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (atx, acks) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(rumqttc::v5::Event::Incoming(Packet::Publish(p))) => {
                        let _ = tx.send(p);
                    }
                    Ok(rumqttc::v5::Event::Incoming(p)) => {
                        let _ = atx.send(p);
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        });
        RumqttV5 { client, rx, acks, task }
    }

    pub async fn subscribe(&mut self, filter: &str, qos: rumqttc::v5::mqttbytes::QoS) {
        use rumqttc::v5::mqttbytes::v5::Packet;
        self.client.subscribe(filter, qos).await.expect("subscribe request");
        self.wait_ack("SUBACK", |p| matches!(p, Packet::SubAck(_))).await;
    }

    pub async fn publish(&mut self, topic: &str, qos: rumqttc::v5::mqttbytes::QoS, payload: &[u8]) {
        use rumqttc::v5::mqttbytes::v5::Packet;
        use rumqttc::v5::mqttbytes::QoS;
        self.client.publish(topic, qos, false, payload.to_vec()).await.expect("publish request");
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.wait_ack("PUBACK", |p| matches!(p, Packet::PubAck(_))).await,
            QoS::ExactlyOnce => self.wait_ack("PUBCOMP", |p| matches!(p, Packet::PubComp(_))).await,
        }
    }

    async fn wait_ack(&mut self, what: &str, want: impl Fn(&rumqttc::v5::mqttbytes::v5::Packet) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.acks.recv()).await {
                Ok(Some(p)) if want(&p) => return,
                Ok(Some(_)) => {}
                Ok(None) => panic!("rumqttc v5 connection ended while waiting for {what}"),
                Err(_) => panic!("no {what} within {WAIT:?}"),
            }
        }
    }

    pub async fn next(&mut self, wait: Duration) -> Option<rumqttc::v5::mqttbytes::v5::Publish> {
        timeout(wait, self.rx.recv()).await.ok().flatten()
    }

    pub async fn disconnect(self) {
        let _ = self.client.disconnect().await;
        let _ = timeout(Duration::from_secs(2), self.task).await;
    }
}
