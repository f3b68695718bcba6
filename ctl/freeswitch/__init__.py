"""The FreeSWITCH adapter: the Switch protocol over the event socket (ESL)."""
