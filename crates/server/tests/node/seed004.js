// Seed 004's Socket.IO client code, unchanged except for the server URL, run by
// tests/it/realtime.rs:  node seed004.js <server url> <payment id> [client secret]
// Prints every `paymentUpdate` as one line `UPDATE <json>` and exits 0 after a final status;
// prints `ERROR <json>` and exits 2 on an `error` event; exits 1 after 30 s.
const { io } = require('socket.io-client');

const [serverUrl, id, clientSecret] = process.argv.slice(2);
// The seed emits a bare id; `{ paymentId, clientSecret }` is jinliu's checked form.
const paymentId = clientSecret ? { paymentId: id, clientSecret } : id;
const FINAL = ['completed', 'failed', 'expired', 'cancelled', 'partially_refunded', 'refunded'];

function updatePaymentStatus(data) {
  process.stdout.write(`UPDATE ${JSON.stringify(data)}\n`);
  if (FINAL.includes(data.status)) {
    socket.close();
    process.exit(0);
  }
}

// ---- seed 004, "WebSocket實時更新" ----
// 連接WebSocket
const socket = io(serverUrl);

// 監聽支付狀態更新
socket.on('paymentUpdate', (data) => {
  console.log('支付狀態更新:', data);
  // 更新UI狀態
  updatePaymentStatus(data);
});

// 加入支付房間
socket.emit('joinPaymentRoom', paymentId);
// ---- end of seed 004 ----

socket.on('error', (e) => {
  process.stdout.write(`ERROR ${JSON.stringify(e)}\n`);
  socket.close();
  process.exit(2);
});
setTimeout(() => {
  process.stdout.write('TIMEOUT\n');
  process.exit(1);
}, 30000);
