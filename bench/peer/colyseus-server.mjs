// Connect Four on Colyseus, the way its documentation writes a room: the board in memory, each
// move checked and broadcast to the room at once, nothing stored; a finished game's board is
// reset in place for the next one. `node colyseus-server.mjs PORT`.
import { Room, Server } from "@colyseus/core";
import { WebSocketTransport } from "@colyseus/ws-transport";

const COLUMNS = 7;
const ROWS = 6;

class ConnectFour extends Room {
  maxClients = 100000;

  onCreate() {
    this.seats = [];
    this.moves = 0; // moves made in this room, every game counted: the receivers check them
    this.newBoard();
    this.onMessage("move", (client, column) => this.play(client, column));
  }

  onJoin(client, options) {
    if (options && (options.seat === 0 || options.seat === 1)) {
      this.seats[options.seat] = client.sessionId;
    }
  }

  newBoard() {
    this.heights = new Array(COLUMNS).fill(0);
    this.board = new Array(COLUMNS * ROWS).fill(-1);
    this.turn = 0;
    this.played = 0;
  }

  play(client, column) {
    const seat = this.seats.indexOf(client.sessionId);
    if (seat !== this.turn || !Number.isInteger(column) || column < 0 || column >= COLUMNS
      || this.heights[column] >= ROWS) {
      client.send("refused", column);
      return;
    }
    const row = this.heights[column]++;
    this.board[row * COLUMNS + column] = seat;
    this.played += 1;
    this.moves += 1;
    const won = this.wins(row, column, seat);
    const over = won || this.played === COLUMNS * ROWS;
    this.broadcast("played", [this.moves, seat, column, row, over ? (won ? 1 : 2) : 0]);
    if (over) {
      this.newBoard();
    } else {
      this.turn = 1 - seat;
    }
  }

  wins(row, column, seat) {
    const at = (r, c) => r >= 0 && r < ROWS && c >= 0 && c < COLUMNS && this.board[r * COLUMNS + c] === seat;
    for (const [dr, dc] of [[0, 1], [1, 0], [1, 1], [1, -1]]) {
      let n = 1;
      for (let k = 1; at(row + dr * k, column + dc * k); k++) n++;
      for (let k = 1; at(row - dr * k, column - dc * k); k++) n++;
      if (n >= 4) return true;
    }
    return false;
  }
}

const port = Number(process.argv[2]);
const server = new Server({ transport: new WebSocketTransport() });
server.define("connect4", ConnectFour);
await server.listen(port, "127.0.0.1");
console.log(`PEER listening on ws://127.0.0.1:${port}`);
