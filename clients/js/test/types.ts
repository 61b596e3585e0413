// Compiled with `tsc --noEmit --strict` by scripts/test-js.sh: the declarations describe the
// API as the tests use it (this file is never run).
import { Umpire, type Created, type Envelope, type Joined, type OpenGame, type UmpireError, type Status } from "../umpire.js";

async function play(url: string): Promise<number> {
  const client: Umpire = await new Umpire(url).connect();
  client.onStatus((status: Status, detail: string) => console.log(status, detail));
  client.onEvent((game: number, env: Envelope) => console.log(game, env.seq, env.body));
  const game: Created = await client.create("tally", null);
  try {
    await client.command(game.game, { add: 1 });
  } catch (e) {
    const refused = e as UmpireError;
    if (refused.code === "rejected" && typeof refused.reason === "object") return -1;
  }
  const ok = await client.command(game.game, { add: 2 });
  client.close();
  return ok.seq ?? 0;
}

async function quick(url: string): Promise<number> {
  const client: Umpire = await new Umpire(url).connect();
  await client.openGames("connect4", (games: OpenGame[]) => console.log(games.map((g) => [g.game, g.taken, g.seats, g.join])));
  const seat: Created | Joined = await client.play("connect4", null, { rating: 1500 });
  try {
    await client.cancel("connect4");
  } catch (e) {
    if ((e as UmpireError).code === "cancelled") return -1;
  }
  return seat.game;
}

export { play, quick };
