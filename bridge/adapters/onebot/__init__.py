"""OneBot v11 for bots (NoneBot2, Koishi, aiocqhttp) served from the bus."""
