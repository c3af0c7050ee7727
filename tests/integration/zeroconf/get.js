// node's http.get with the defaults (node >= 20: happy eyeballs over every address of a name).
const http = require('http');
http.get(process.argv[2], (res) => {
  res.setEncoding('utf8');
  res.on('data', (d) => process.stdout.write(d));
}).on('error', (e) => {
  console.error(e.code || '', e.message || String(e));
  process.exit(1);
});
