package evaluate

import (
	"github.com/atlas-stream/atlas/consumers/anomaly"
	"github.com/atlas-stream/atlas/producers/sim/geo"
)

// GeoLocator places client networks with the simulator's world map
// (package sim/geo), the stand-in for a geo-IP database that Atlas uses
// until it has a real one.
func GeoLocator() anomaly.Locator {
	cities := geo.Cities()
	return func(clientNet string) (anomaly.Place, bool) {
		i, slot, ok := geo.Locate(clientNet)
		if !ok {
			return anomaly.Place{}, false
		}
		c := cities[i]
		return anomaly.Place{City: c.Name, Country: c.Country, Lat: c.Lat, Lon: c.Lon, Hosting: slot == geo.SlotHosting}, true
	}
}

// OfflineConfig is the configuration of an in-memory run of the role:
// topic names of its own, the simulator's map, default detectors.
func OfflineConfig(partitions int) anomaly.Config {
	return anomaly.Config{PlaybackTopic: "playback", BrowseTopic: "browse", RekeyTopic: "rekey",
		Partitions: partitions, Locate: GeoLocator()}
}
