"""OneBot v11 upstream: real QQ accounts through NapCat, LLBot and other implementations."""
